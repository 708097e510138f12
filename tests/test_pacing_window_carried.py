"""Sends a window carried from the last one and never answered in it are not carried
again: a window that granted none of its own opens the next with nothing outstanding.

A window that resets unseen carries its unanswered sends into the next (they may land
in it).  A 429 for a send admitted a window or more before the current one is an
earlier window's (``allowance.earlier_windows``): counted, never as an answer.  So
sends carried twice stayed unanswered for good, every window opened full of them and
waited, one probe per ``ANSWER_WAIT``: the state of seed 151 of the 2 s family (13
processes, a window of 20 ms learned at 115 ms, 90 sends carried): one send a second
for 2,000 s.  In process on an injected clock; the script on a real Redis:
``tests/test_pacing_window_carried_redis.py``.
"""

from __future__ import annotations

import attrs

from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .step_clock import Clock

W, HINT, TRIP = 90, 0.0197, 0.115


def carried(now: float) -> PacingState:
    """A window of W per 19.7 ms that opened unseen 15 ms ago, W sends carried into it
    from one granted half a second ago, none answered; the last told reset long past."""
    return PacingState(
        limit=740.0,
        searching=False,
        origin=now - 2.0,
        cut_at=now - 1.0,
        cuts=2,
        successes=1000,
        throttles=400,
        pause_until=now - 1.0,
        window_hint=HINT,
        win_size=W,
        win_opened=now - 0.015,
        win_base=1000,
        win_throttles=400,
        win_sent=W,
        win_granted=now - 0.5,
        win_reset=now - 1.0,
    )


async def test_sends_carried_twice_do_not_hold_the_window_shut() -> None:
    """Reservations 5 ms apart for 3 s, each send accepted a round trip later (the
    limit rose, as seed 151's did): W goes again at the next reset, not one probe a
    second (main: 3 sends in 3 s, each probe's success taken for a carried send's)."""
    clock = Clock()
    backend = InMemoryPacingBackend(clock=clock, state=carried(clock.now))
    end = clock.now + 3.0
    due: list[tuple[float, float]] = []  # (answered at, admitted at)
    granted = 0
    while clock.now < end:
        reservation = await backend.reserve(16)
        granted += reservation.count
        due += [(clock.now + TRIP, clock.now)] * reservation.count
        clock.now += 0.005
        for answered, admitted in [d for d in due if d[0] <= clock.now]:
            due.remove((answered, admitted))
            await backend.report(PacingFeedback(successes=1, latest_accepted=admitted))
    assert granted >= W


async def test_a_window_that_granted_sends_still_carries_its_unanswered() -> None:
    """A window that granted its own sends and reset unseen with 12 of them unanswered
    carries those 12 into the next (they may land in it), as before."""
    clock = Clock()
    now = clock.now
    before = attrs.evolve(carried(now), win_granted=now - 0.01, successes=1000 + W - 12)
    backend = InMemoryPacingBackend(clock=clock, state=before)
    clock.now = now + 0.005
    reservation = await backend.reserve(16)
    assert backend.state.win_opened > before.win_opened  # reset unseen
    assert backend.state.win_sent - reservation.count == 12
