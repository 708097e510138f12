"""A window's allowance at each reset: W at once, then one probe (pure functions).

Once a hint says the limit is a window of seconds (``state.window_hint``) and no
stated limit asks for even spacing, the rate schedule is set aside: a window of W per
T admits W at each reset, and the ideal sends them at once.  The allowance lives in
the ``PacingState``, so every pacer sharing it (processes on one Redis, or one
process alone) draws from one W per window, not W each:

* **A reset** is the end of a pause on a hint that says when the window resets (an
  exact one, or a whole one of ``WINDOW_HINT`` or more: ``win_reset``).  The first
  reservation at or after it opens a new window: W is what the last one accepted
  (the successes reported since it opened), or stays as it was if that was none.
* **W at once**: reservations hand out the window's sends all at the reset (interval
  0), up to W in total; W unknown (the first window), as many as are asked.
* **Past W, one probe for all**: one send, and only once every send of the window is
  answered (else a probe that overtakes W's own sends says nothing), or
  ``ANSWER_WAIT`` after the last grant (an answer lost to an error or a crash).  Its
  429 pauses everyone to the next reset (``on_hint``); more successes reported since
  it went than answers were then missing (``win_probed``) mean the window reset early
  (a rounded hint) or grew, and a new window opens at once.
"""

from __future__ import annotations

from .state import PacingState, PacingTuning, evolve

__all__ = ["ANSWER_WAIT", "in_window_mode", "reserve_window", "window_rate", "window_reset"]

ANSWER_WAIT = 1.0
"""Seconds after a window's last grant that its probe goes even with answers missing:
longer than any round trip of the family (200 ms +-50%) plus a success's report lag,
short against a window (1-60 s); an answer is lost only to an error or a crash."""


def in_window_mode(state: PacingState, cap: float | None) -> bool:
    """A window of seconds is known and no stated limit asks for even spacing."""
    return state.window_hint > 0 and state.limit is not None and cap is None


def window_rate(state: PacingState) -> float | None:
    """The window's average, W per hint (a hint is the time left to the reset, perhaps
    a fraction of the window), at most the learned limit: the rate a pacer shows.  The
    curve is set aside in the window's mode and, never frozen by a reservation, read
    raw it climbed to absurd rates (565,957/s beside a limit of 0.5/s)."""
    if state.limit is not None and state.win_size and state.window_hint > 0:
        return min(state.win_size / state.window_hint, state.limit)
    return state.limit


def window_reset(state: PacingState, before: float, exact_or_window: bool) -> PacingState:
    """After ``on_hint``: a pause it extended past ``before`` on a hint that says when
    the window resets ends at a reset."""
    if exact_or_window and state.pause_until > before:
        return evolve(state, win_reset=state.pause_until)
    return state


def _open(state: PacingState, at: float) -> PacingState:
    accepted = state.successes - state.win_base
    return evolve(
        state,
        win_size=accepted if accepted > 0 else state.win_size,
        win_opened=at,
        win_base=state.successes,
        win_throttles=state.throttles,
        win_sent=0,
    )


def reserve_window(
    state: PacingState, now: float, count: int, tuning: PacingTuning
) -> tuple[PacingState, float, int]:
    """Up to ``count`` sends of the window's allowance: (state, when they go, n); n 0:
    ask again by then (a pause, or a probe waiting for answers)."""
    at = max(now, state.pause_until)
    if at > now + tuning.horizon:
        return state, at, 0
    if state.win_opened < state.win_reset <= at:
        state = _open(state, state.win_reset)
    size = state.win_size
    if size and state.win_sent > size and state.successes > state.win_probed:
        state = _open(state, at)  # the probe got through: an early reset, or W grew
        size = state.win_size
    if not size:
        n = max(count, 1)
    elif state.win_sent < size:
        n = min(max(count, 1), size - state.win_sent)
    else:
        accepted = state.successes - state.win_base
        answered = accepted + state.throttles - state.win_throttles
        # (A grant stamped ahead of now, from a clock that went back, is stale.)
        waited = now - state.win_granted
        if answered < state.win_sent and 0 <= waited < ANSWER_WAIT:
            return state, now + 2 * tuning.horizon, 0  # ask again within a horizon
        # Answers still missing at the first probe may yet come as successes: only more
        # than those say it got through (a slow answer once opened a window into a full
        # one).  At a later probe they are lost (a caller gave up, a process died):
        # counted still, an accepted probe never reopened the window.
        missing = max(state.win_sent - answered, 0) if state.win_sent == size else 0
        state = evolve(state, win_probed=state.successes + missing)
        n = 1
    return evolve(state, win_sent=state.win_sent + n, win_granted=now), at, n
