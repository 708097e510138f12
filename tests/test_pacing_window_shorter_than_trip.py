"""An exact hint shorter than its own round trip opens no window.

A sliding window refuses with the wait for its oldest slot: often a few milliseconds,
and at a fast pace still ``WINDOW_SLOTS`` slots or more, so ``learn_window`` took it
for a window's.  A window of 20 ms seen from 115 ms away resets before any answer of
its W comes back: every window then opened unseen, every 429 was an earlier window's
(counted, nothing else), and the sends carried from window to window, never answered
in any, held the shared state at one probe a second for good (seed 151 of the 2 s
family, 13 processes: 1,014 sent in 3 s, then one a second for 2,000 s, 722x).

One pacer on an injected clock (``allowance``, ``pause.learn_window``); the scripts
on a real Redis: ``tests/test_pacing_window_shorter_than_trip_redis.py``.
"""

from __future__ import annotations

from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingState

from .pacing_kit import paced
from .step_clock import Clock

LIMIT, HINT, TRIP = 740.0, 0.0197, 0.12


def past_the_search(now: float, window_hint: float = 0.0) -> PacingState:
    """The limit known at 740/s (the search over), a success since the last cut, the
    window ``window_hint`` known (none): a state like seed 151's at 1.6 s."""
    return PacingState(
        limit=LIMIT,
        searching=False,
        origin=now - 1.0,
        cut_at=now - 1.0,
        cuts=2,
        successes=500,
        successes_at_cut=400,
        pause_until=now - 0.5,
        window_hint=window_hint,
    )


def _past_the_search(clock: Clock) -> InMemoryPacingBackend:
    return InMemoryPacingBackend(clock=clock, state=past_the_search(clock.now))


async def test_a_hint_shorter_than_its_round_trip_opens_no_window() -> None:
    """A 429 answered 120 ms after its admission with an exact hint of 19.7 ms (14
    slots at 740/s): a pause to the hint, the limit paced on its curve, no window; so
    the pacer sends at its rate after the pause, not one probe a second."""
    clock = Clock()
    backend = _past_the_search(clock)
    pacer = paced(clock, backend)
    sent = pacer.try_acquire()
    assert sent is not None
    clock.now += TRIP
    await pacer.on_throttle(sent, HINT)
    state = backend.state
    assert state.window_hint == 0.0  # main: 0.0197, a window's mode of 20 ms
    assert state.pause_until == clock.now + HINT
    clock.now = state.pause_until + 0.001
    reservation = await backend.reserve(16)
    assert reservation.interval > 0  # paced at the curve's rate, not a window's W
    # Two seconds on, answers all lost or all in: the rate goes on (main: 1 a second).
    granted = 0
    for _ in range(400):
        clock.now += 0.005
        granted += (await backend.reserve(16, successes=0)).count
    assert granted > 400


async def test_a_hint_longer_than_its_round_trip_still_opens_a_window() -> None:
    """The same hint for a request answered 10 ms after its admission: a window's
    (its reset comes after the answer), as before."""
    clock = Clock()
    backend = _past_the_search(clock)
    pacer = paced(clock, backend)
    sent = pacer.try_acquire()
    assert sent is not None
    clock.now += 0.01
    await pacer.on_throttle(sent, HINT)
    assert backend.state.window_hint == HINT
