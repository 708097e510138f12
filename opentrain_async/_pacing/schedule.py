"""The schedule: GCRA virtual scheduling of start slots (a pure function of state and now).

``tat`` is the theoretical start of the next slot.  A reservation hands out consecutive
slots ``interval`` apart from ``max(tat, pause_until)``: a slot missed
by up to ``tolerance`` (a timer that fired late, a busy event loop) is still due and is
released together with the others due, so the schedule holds at any rate the machine
can send; a sender idle for longer restarts the schedule at now (never a burst) and the
curve is frozen for the idle time.  One call reserves the slots due within ``horizon``
(at least one, at most ``count``), so a shared backend is asked once per batch.
"""

from __future__ import annotations

import math

import attrs

from .curve import freeze
from .samples import record
from .state import PacingState, PacingTuning

__all__ = ["reserve_slots", "restart_if_idle"]


def restart_if_idle(state: PacingState, now: float, tuning: PacingTuning) -> PacingState:
    """A sender idle for longer than ``tolerance`` restarts the schedule at ``now`` (no
    burst of the slots it did not use) and its curve is frozen for the idle time (a
    consumer pause is not probing time).  Called before the rate is read."""
    if state.tat >= now - tuning.tolerance:
        return state
    state = freeze(state, max(state.tat, state.pause_until), now)
    return attrs.evolve(state, tat=now)


def reserve_slots(
    state: PacingState, now: float, interval: float, count: int, tuning: PacingTuning
) -> tuple[PacingState, float, int]:
    """Reserve up to ``count`` slots ``interval`` apart; returns (state, first slot, n).

    ``interval`` 0 means unpaced: ``count`` slots at the end of any pause."""
    count = max(1, count)
    if interval <= 0:
        return state, max(now, state.pause_until), count
    start = max(state.tat, state.pause_until, now - tuning.tolerance)
    n = 1
    if start < now + tuning.horizon:
        n = min(count, 1 + math.floor((now + tuning.horizon - start) / interval))
    state = record(state, now, offered=n)
    return attrs.evolve(state, tat=start + n * interval), start, n
