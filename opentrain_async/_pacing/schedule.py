"""The schedule: GCRA virtual scheduling of start slots (a pure function of state and now).

``tat`` is the theoretical start of the next slot.  A reservation hands out consecutive
slots ``interval`` apart from ``max(tat, pause_until)``: a slot missed
by up to ``tolerance`` (a timer that fired late, a busy event loop) is still due and is
released together with the others due, so the schedule holds at any rate the machine
can send; a sender idle for longer restarts the schedule at now (never a burst) and the
curve is frozen for the idle time.  One call reserves the slots due within ``horizon``
(at most ``count``), so a shared backend is asked once per batch.  When the next slot
is further away (a pause, or other processes holding the slots before it) but within
``line_ahead`` (0.3 s on a shared backend), it reserves a horizon's slots from there:
a place in line, for which the schedule moves on (GCRA's theoretical arrival time), so
the caller sleeps until its place and sends, instead of asking again with every other
waiting process (16 processes on one Redis asked about once each per slot, 87% of the
answers empty).  Further away it reserves none and the caller asks again when the
place comes within reach: a slot taken far ahead at today's rate would hold its
request back at that rate while the rate rises (several processes each holding one
slot at a search's first 0.5-10/s held everyone back for a second while the search
doubled untested, then burst at thousands per second).  A place whose holder dies is
one slot unused: the line goes on after it.
"""

from __future__ import annotations

import math

from .curve import frozen_origin
from .samples import record
from .state import PacingState, PacingTuning, evolve

__all__ = ["line_ahead", "reserve_slots", "restart_if_idle", "slots"]


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


def line_ahead(tuning: PacingTuning) -> float:
    """How far ahead of now a slot may be reserved: the tuning's ``line_ahead`` (a place
    in line), at least the horizon (no place: in-process, asking again is free)."""
    return max(tuning.horizon, tuning.line_ahead)


def _calm(state: PacingState, now: float, strict: bool) -> bool:
    """No pause, a success since the last 429 that extended one, and no search (unless
    a stated limit sets the pace): a place in line is sent without asking again, so
    while the limit is in doubt (a pause, a shut limiter, a search doubling toward its
    first real cut) nobody holds one (each would be sent into the next pause)."""
    return state.pause_until <= now and state.streak == 0 and (strict or not state.searching)


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
        if start > now + line_ahead(tuning) or not _calm(state, now, strict):
            return state.tat, start, 0
        return start + interval, start, 1  # a place in line
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
    """Reserve up to ``count`` slots ``interval`` apart; returns (state, first slot, n):
    n 1 (a place in line) when the first slot is more than ``horizon`` away, 0 when it
    is more than ``line_ahead`` away (ask again by then).

    ``interval`` 0 means unpaced: ``count`` slots at the end of any pause.  ``strict``
    (pacing at a limit the user stated, which the server must never see exceeded):
    late slots catch up by one interval at most, so requests never bunch."""
    tat, first, n = slots(state, now, interval, count, tuning, strict)
    if interval <= 0 or not n:
        return state, first, n
    return record(state, now, offered=n, tat=tat), first, n
