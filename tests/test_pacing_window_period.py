"""A window of a second or two behind rounded hints, one process: its length, learned at
its first wall, ends a later wall's pause at the reset, not up to a second late
(``allowance.predicted_reset``).

One pacer on an injected clock, driven call by call; the fake server's fixed window of
10 per 1.3 s starts with the first send (at ``start``), so it resets at 1.3 s, 2.6 s...
"""

from __future__ import annotations

import pytest

from opentrain_async._pacing.backend import InMemoryPacingBackend

from .pacing_kit import known_window, paced, probe_after_w
from .step_clock import Clock

W, WINDOW = 10, 1.3


async def _first_wall(clock: Clock) -> tuple[InMemoryPacingBackend, object]:
    """The first wall of the window's mode: its hints bounded the reset at 1.3 s (the
    2 s and 1 s of its 429s flipped there), no window opened yet, the first send at
    ``start``; one more of the wall's 429s (admitted before the pause) is answered."""
    start = clock.now
    state = known_window(
        W, WINDOW, start + WINDOW, window_hint=2.0, began=start, pause_began=start + 0.2
    )
    backend = InMemoryPacingBackend(clock=clock, state=state)
    pacer = paced(clock, backend)
    clock.now = start + 0.4
    await pacer.on_throttle(start + 0.1, 1.0)  # the server's 0.9 s, rounded up
    assert backend.state.win_period == pytest.approx(WINDOW)  # the bound minus the first send
    return backend, pacer


async def test_a_probes_two_seconds_end_at_the_reset_the_length_predicts() -> None:
    """At the reset (1.3 s) W goes and is accepted; the probe past it, answered at
    1.5 s, is refused with the server's 1.1 s rounded up to 2.  Waited to its bound
    (3.5 s), the next window opened 0.9 s after its reset at 2.6 s; the window opened
    at 1.3 s and lasts at most 1.3 s, so it opens at 2.6 s."""
    clock = Clock()
    start = clock.now
    backend, pacer = await _first_wall(clock)
    clock.now = start + WINDOW
    probe = await probe_after_w(clock, pacer, W, start + 1.45)  # type: ignore[arg-type]
    assert backend.state.win_opened == start + WINDOW
    clock.now = start + 1.5
    await pacer.on_throttle(probe, 2.0)  # type: ignore[attr-defined]
    state = backend.state
    assert state.window_hint == 2.0  # still a window
    assert state.pause_until == pytest.approx(start + 2 * WINDOW)
    assert state.win_reset == state.pause_until
    clock.now = start + 2 * WINDOW - 0.01
    assert pacer.try_acquire() is None  # type: ignore[attr-defined]
    clock.now = state.pause_until
    assert pacer.try_acquire() is not None  # type: ignore[attr-defined]
    assert backend.state.win_opened == state.pause_until


async def test_a_window_refused_past_the_predicted_reset_forgets_its_length() -> None:
    """A window that did not start with the first send (a clock's second, say) is
    longer than its first wall says: a probe sent past the predicted reset and refused
    proves it.  The length is dropped and the hint bounds the reset as before."""
    clock = Clock()
    start = clock.now
    backend, pacer = await _first_wall(clock)
    clock.now = start + WINDOW
    probe = await probe_after_w(clock, pacer, W, start + 2.7)  # type: ignore[arg-type]
    clock.now = start + 2.8
    await pacer.on_throttle(probe, 1.0)  # type: ignore[attr-defined]
    state = backend.state
    assert state.win_period == 0
    assert state.pause_until == pytest.approx(start + 3.8)
    assert state.win_reset == state.pause_until


async def test_ws_own_sends_refused_forget_the_length() -> None:
    """A window opened at a predicted reset that had not come refuses W's own sends:
    the length is dropped, their hint's bound holds."""
    clock = Clock()
    start = clock.now
    backend, pacer = await _first_wall(clock)
    clock.now = start + WINDOW
    sent = [pacer.try_acquire() for _ in range(W)]  # type: ignore[attr-defined]
    assert None not in sent
    clock.now = start + 1.4
    await pacer.on_throttle(sent[0], 2.0)  # type: ignore[attr-defined]
    state = backend.state
    assert state.win_period == 0
    assert state.pause_until == pytest.approx(start + 3.4)
