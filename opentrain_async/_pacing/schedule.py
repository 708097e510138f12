"""The schedule: GCRA virtual scheduling of start slots (a pure function of state and now).

``tat`` is the theoretical start of the next slot.  A reservation hands out consecutive
slots ``interval`` apart from ``max(tat, pause_until)``: a slot missed
by up to ``tolerance`` (a timer that fired late, a busy event loop) is still due and is
released together with the others due, so the schedule holds at any rate the machine
can send; a sender idle for longer restarts the schedule at now (never a burst) and the
curve is frozen for the idle time.  One call reserves the slots due within ``horizon``
(at most ``count``), so a shared backend is asked once per batch; when the next slot is
further away (a pause, or other processes holding the slots before it) it reserves
none and the caller asks again shortly before then: a slot taken far ahead at today's
rate would hold its request back at that rate while the rate rises (several processes
each holding one slot at a search's first 0.5-10/s held everyone back for a second
while the search doubled untested, then burst at thousands per second).
"""

from __future__ import annotations

import math

from .curve import frozen_origin
from .samples import record
from .state import PacingState, PacingTuning, evolve

__all__ = ["reserve_slots", "restart_if_idle", "slots"]


def restart_if_idle(state: PacingState, now: float, tuning: PacingTuning) -> PacingState:
    """Bring a lagging schedule up to ``now`` before the rate is read.

    A schedule behind by up to ``tolerance`` keeps its slots (they are due).  Behind by
    more, but less than ``idle_after``, the sender was busy and late (a slow event-loop
    turn): the schedule catches up by ``tolerance`` at most.  Behind by ``idle_after`` or
    more, the sender idled (a consumer pause, a slow input): the schedule restarts at
    ``now`` (no burst) and the curve is frozen for the idle time, which was no probing.
    """
    lag = now - state.tat
    if lag <= tuning.tolerance:
        return state
    if lag < tuning.idle_after:
        # Busy but behind: the rate was not what held sends back, so the curve does not
        # climb for the time lost (a sender limited by its concurrency or its CPU must
        # not grow a rate it never uses, then burst at it).
        tat = now - tuning.tolerance
        origin = frozen_origin(state, state.tat, tat)
    else:
        tat = now
        origin = frozen_origin(state, max(state.tat, state.pause_until), now)
    return evolve(state, tat=tat, origin=origin)


def slots(
    state: PacingState,
    now: float,
    interval: float,
    count: int,
    tuning: PacingTuning,
    strict: bool = False,
) -> tuple[float, float, int]:
    """The slots ``reserve_slots`` takes: (the new ``tat``, first slot, n), as numbers."""
    count = max(1, count)
    if interval <= 0:
        return state.tat, max(now, state.pause_until), count
    tolerance = min(tuning.tolerance, interval) if strict else tuning.tolerance
    start = max(state.tat, state.pause_until, now - tolerance)
    if start > now + tuning.horizon:
        return state.tat, start, 0
    n = min(count, 1 + math.floor((now + tuning.horizon - start) / interval))
    return start + n * interval, start, n


def reserve_slots(
    state: PacingState,
    now: float,
    interval: float,
    count: int,
    tuning: PacingTuning,
    strict: bool = False,
) -> tuple[PacingState, float, int]:
    """Reserve up to ``count`` slots ``interval`` apart; returns (state, first slot, n),
    n 0 when the first slot is more than ``horizon`` away (ask again by then).

    ``interval`` 0 means unpaced: ``count`` slots at the end of any pause.  ``strict``
    (pacing at a limit the user stated, which the server must never see exceeded):
    late slots catch up by one interval at most, so requests never bunch."""
    tat, first, n = slots(state, now, interval, count, tuning, strict)
    if interval <= 0 or not n:
        return state, first, n
    return record(state, now, offered=n, tat=tat), first, n
