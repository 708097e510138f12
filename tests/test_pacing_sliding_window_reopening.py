"""A sliding window reopens slot by slot: W sent at its reset is partly refused a few
milliseconds after it, with exact hints of a slot.  What that 429 cuts the limit to is
the window's average over a whole window, not over those milliseconds.

One pacer on an injected clock, driven call by call against the fake server's sliding
window (``allowance.window_average``).
"""

from __future__ import annotations

import pytest

from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import paced_at_reset, probe_after_w
from .step_clock import Clock

W, WINDOW, LATENCY = 400, 1.4, 0.025


async def test_a_reopening_sliding_window_is_cut_to_its_average_over_a_window() -> None:
    """400 per 1.4 s, its last window filled by a ramp (10 sends 20 ms apart, then the
    rest at once), a window's mode learned from a 0.9 s hint.  At the reset the pacer
    sends W at once: two are admitted, the rest refused 15 ms before their slots free.
    The cut takes W per hint (444/s, above the true 286/s; later 429s bring it down);
    counted over the 40 ms since the reset it was 2 per 40 ms, 50/s, and the curve took
    seconds to climb back (seed 5921 of the 2 s family: 193/s of 695/s, 4.40x)."""
    clock = Clock()
    start = clock.now
    server = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    filled = start - WINDOW
    for k in range(10):
        assert server.acquire(filled + 0.02 * k) is None
    for _ in range(W - 10):
        assert server.acquire(filled + 0.5) is None
    backend, pacer = paced_at_reset(clock, W, 0.9, limit=1500.0, cut_at=start - 0.001)
    sent = [pacer.try_acquire() for _ in range(W)]
    assert None not in sent
    clock.now = start + LATENCY
    waits = [server.acquire(clock.now) for _ in sent]
    admitted = [at for at, wait in zip(sent, waits, strict=True) if wait is None]
    refused = [(at, wait) for at, wait in zip(sent, waits, strict=True) if wait is not None]
    assert len(admitted) == 2
    at, wait = refused[0]
    assert wait is not None
    assert 0.01 < wait < 0.02  # a slot, exact
    for ok in admitted:
        pacer.on_success(ok)  # type: ignore[arg-type]
    await pacer.flushed()
    await pacer.on_throttle(at, wait)  # type: ignore[arg-type]
    state = backend.state
    assert state.window_hint == 0.9  # still a window (the hint is 22 slots at the pace)
    assert state.limit is not None
    assert state.limit >= W / WINDOW
    assert state.limit <= W / state.window_hint


async def test_a_whole_hints_probe_still_reads_the_average_from_reset_to_reset() -> None:
    """A window of 10 per about 1.3 s learned from a whole 2 s hint: its W sent at the
    reset and accepted, its probe refused with a rounded second, which bounds the next
    reset 1.3 s after this one.  Those 1.3 s are a window (a whole hint of 2 s says it
    lasts more than 1 s), so the cut reads 10 per 1.3 s, not W per hint (5/s: seed 5505
    of the 2 s family, a fixed window, 1.52x -> 1.84x when W per hint read for it)."""
    clock = Clock()
    start = clock.now
    backend, pacer = paced_at_reset(clock, 10, 2.0, limit=50.0, cut_at=start - 0.001)
    probe = await probe_after_w(clock, pacer, 10, start + 0.1)
    clock.now = start + 0.3
    await pacer.on_throttle(probe, 1.0)
    state = backend.state
    assert state.window_hint == 2.0
    assert state.pause_until == pytest.approx(start + 1.3)
    assert state.limit == pytest.approx(10 / 1.301)
