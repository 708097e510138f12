"""A shut limiter's probe in the shared state: one for every pacer (pure functions).

The wall is the window's allowance (``allowance``) with no hint to say when it
resets: a window whose reset is learned by probing.  A pacer's ``WallProbe`` finds
it (a request admitted after a guessed pause refused too) and reports it with its
429 (``PacingFeedback.wall``: no probe before then, from the walls it has seen);
from then on every pacer sharing the state (processes on one Redis, or clients of
one process) draws one probe in total, not one each:

* **One probe for all**: a reservation grants one send once the pause and
  ``wall_from`` have passed and no probe is out; while one is out, "ask again within
  a horizon", as a window's probe waiting for answers does.
* **Its answer**: a 429 for a request admitted at or after the probe's grant ends it
  (the pause that 429 set holds the next one back); a success reported since it went
  (every pacer reports at once while shut: its reservation is a window's, interval
  0) lifts the wall, and the rate schedule takes over again, frozen meanwhile;
  ``ANSWER_WAIT`` after the grant, an answer lost to an error or a crash, another
  probe may go.
"""

from __future__ import annotations

from .allowance import ANSWER_WAIT, in_window_mode
from .state import PacingFeedback, PacingState, PacingTuning, evolve

__all__ = ["reserve_wall", "wall_refused"]

_NONE = float("-inf")


def wall_refused(state: PacingState, feedback: PacingFeedback, cap: float | None) -> PacingState:
    """A 429 (successes already counted): it ends the probe it answers, and shuts the
    limiter for everyone when its pacer found it shut (not in a window's mode, which
    probes its own way)."""
    sent_at = feedback.throttled_at
    if state.wall_probe > _NONE and sent_at is not None and sent_at >= state.wall_probe:
        state = evolve(state, wall_probe=_NONE)
    if feedback.wall is not None and not state.wall_shut and not in_window_mode(state, cap):
        state = evolve(
            state,
            wall_shut=1,
            wall_from=feedback.wall,
            wall_probe=_NONE,
            wall_probed=state.successes,
        )
    return state


def reserve_wall(
    state: PacingState, now: float, tuning: PacingTuning
) -> tuple[PacingState, float | None, int]:
    """While shut: (state, when the probe goes, n), n 0: ask again by then; the time
    None: not shut (or lifted here by a success reported since the probe went)."""
    if not state.wall_shut or state.limit is None:
        return state, None, 0
    probing = state.wall_probe > _NONE
    if probing and state.successes > state.wall_probed:  # accepted: the wall lifted
        return evolve(state, wall_shut=0, wall_from=_NONE, wall_probe=_NONE), None, 0
    if probing and now < state.wall_probe + ANSWER_WAIT:
        return state, now + 2 * tuning.horizon, 0  # its answer is on the way
    at = max(now, state.pause_until, state.wall_from)
    if at > now + tuning.horizon:
        return state, at, 0
    return evolve(state, wall_probe=at, wall_probed=state.successes), at, 1
