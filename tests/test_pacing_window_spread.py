"""A sliding window frees each slot a window after the send that took it, so W sent at
once at its reset (the oldest slot's) is mostly refused milliseconds later.  A window
whose own sends drew 429s spreads its next W over the stretch its successes took, from
the reset; a window that refused none of its sends (a fixed one) keeps its burst.

One pacer on an injected clock, driven call by call (``allowance.stretch_answers``,
``allowance._spread``).
"""

from __future__ import annotations

import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend

from .pacing_kit import paced_at_reset
from .step_clock import Clock

W, HINT, GAP = 10, 1.0, 0.03


def _at_reset(clock: Clock) -> tuple[InMemoryPacingBackend, Pacer]:
    """W of 10 per 1 s known, a window before this one, its reset now."""
    cut_at, opened = clock.now - 2.0, clock.now - HINT
    return paced_at_reset(clock, W, HINT, limit=1500.0, cut_at=cut_at, win_opened=opened)


async def _one_window(clock: Clock, pacer: Pacer, refused: int) -> float:
    """W asked for one by one, ``GAP`` apart (their callers came so), answered: the
    last ``refused`` with a 429 whose exact hint is the next reset, the rest accepted.
    Returns that reset."""
    start = clock.now
    sent = []
    for k in range(W):
        clock.now = start + GAP * k
        at = pacer.try_acquire()
        assert at == pytest.approx(clock.now)
        sent.append(at)
    clock.now = start + GAP * W
    for at in sent[: W - refused]:
        pacer.on_success(at)
    await pacer.flushed()
    reset = start + HINT
    for at in sent[W - refused :]:
        await pacer.on_throttle(at, reset - clock.now)
    return reset


async def test_a_window_whose_sends_were_refused_spreads_its_next_w() -> None:
    """9 of W accepted as their callers came over 0.24 s, the last refused until the
    next reset: at that reset one send goes, not all 9 (they went at once before, into
    slots a sliding window frees over those 0.24 s); each of the rest goes at its share
    of the stretch, ``reset + 0.24 * k / 9``, none before it."""
    clock = Clock()
    backend, pacer = _at_reset(clock)
    reset = await _one_window(clock, pacer, refused=1)
    clock.now = reset
    assert pacer.try_acquire() == pytest.approx(reset)
    assert pacer.try_acquire() is None  # the next is 27 ms away: not yet
    assert backend.state.win_size == 9
    assert backend.state.win_stretch == pytest.approx(GAP * 8)
    for k in range(1, 9):
        due = reset + GAP * 8 * k / 9
        clock.now = due - 0.005
        assert pacer.try_acquire() is None, k  # not before its time
        clock.now = due
        assert pacer.try_acquire() == pytest.approx(due), k
    assert pacer.try_acquire() is None  # W sent: the probe waits for the answers


async def test_a_window_that_refused_none_of_its_sends_keeps_its_burst() -> None:
    """The same window with every send accepted (a fixed window, whose callers came
    over 0.27 s), only the probe past W refused: the next W goes at once at the reset,
    not spread over the time its callers took."""
    clock = Clock()
    _, pacer = _at_reset(clock)
    start = clock.now
    await _one_window(clock, pacer, refused=0)
    probe = pacer.try_acquire()
    assert probe is not None
    reset = start + HINT
    await pacer.on_throttle(probe, reset - clock.now)
    clock.now = reset
    sent = [pacer.try_acquire() for _ in range(W)]
    assert sent == [pytest.approx(reset)] * W
