"""The hint pause: how long a 429's hint holds every request back (pure functions).

A fractional hint is taken as exact: nothing gets through before it, so everyone waits
it out.  So is a whole-second hint of 2 s or more: a full window says when it resets,
and probing into it before then costs each probe its request the whole hint, while
waiting for the rounded-up part costs less than a second per episode.  A hint of one
whole second (a fast limit that rounds its hints up, or a window that filled in its
last second, so resets any moment) gets only a short pause, doubling while 429s come
back to back (a 429 for a request admitted before the current pause began is part of
the same burst and does not double it).  So does a 429 with no hint at all, or a hint of
0: it says no more than a rounded second (before, it paused nothing, and every request
in flight met the same limit).  Such a hint is left to the pacer by a bulk
send's retry too (``left_to_pacer``): the retry waits for its admission, not the
whole rounded second.
"""

from __future__ import annotations

import attrs

from .state import PacingState, PacingTuning

__all__ = [
    "WINDOW_HINT",
    "WINDOW_SLOTS",
    "bucket_bound",
    "is_exact",
    "learn_window",
    "left_to_pacer",
    "on_hint",
    "says_reset",
]


WINDOW_HINT = 2.0
"""A whole-second hint this long comes from a window of seconds (or a slow limit)."""
WINDOW_SLOTS = 10.0
"""An exact hint this many slots long at the pace that drew it comes from a full window
(it says when the window resets); a bucket's hint is about one slot (its next token)."""


def learn_window(
    state: PacingState,
    retry_after: float | None,
    rate: float | None = None,
    trip: float | None = None,
) -> PacingState:
    """Remember a window's hint: whole seconds, ``WINDOW_HINT`` or more, or an exact hint
    ``WINDOW_SLOTS`` slots long at ``rate`` (the pace the 429's request was sent at).
    A shorter fractional hint says the limit is not a window.  An exact hint shorter
    than ``trip``, its own 429's round trip (admission to answer), neither opens a
    window nor lengthens one: such a window would reset before any answer of its W came
    back, so every window would open unseen and every 429 be an earlier window's
    (``allowance.earlier_windows``), answered and counted in none; the sends carried
    from window to window then held one probe a second for good (seed 151, a sliding
    window's 20 ms wait for its oldest slot at 115 ms: 722x, one send a second)."""
    if retry_after is None or retry_after <= 0:
        return state
    if is_exact(retry_after):
        if rate is None or retry_after * rate < WINDOW_SLOTS:
            return attrs.evolve(state, window_hint=0.0) if state.window_hint else state
        if trip is not None and retry_after < trip:
            return state
    elif retry_after < WINDOW_HINT:
        return state
    if retry_after > state.window_hint:
        return attrs.evolve(state, window_hint=retry_after)
    return state


def is_exact(retry_after: float) -> bool:
    """A fractional hint is exact; a whole number of seconds may have been rounded up."""
    return retry_after != int(retry_after)


def bucket_bound(state: PacingState, retry_after: float | None) -> float | None:
    """The most the limit can be now, from the longest exact hint since the last cut
    (``hint_max``, this one's counted), when this one is exact and no window's: a
    token bucket refuses with the wait for its next token, ``(1 - tokens) / rate``, at
    most a slot, so ``rate <= 1 / hint``, and nearly equal for a refusal just after the
    bucket emptied.  None: the hints say nothing of it."""
    if retry_after is None or retry_after <= 0 or state.window_hint:
        return None
    if not is_exact(retry_after):
        return None
    longest = state.hint_max if state.hint_max > retry_after else retry_after  # (not NaN)
    return 1.0 / longest


def says_reset(retry_after: float | None) -> bool:
    """A hint that says when the limiter reopens: exact, or a window's whole seconds."""
    return (
        retry_after is not None
        and retry_after > 0
        and (is_exact(retry_after) or retry_after >= WINDOW_HINT)
    )


def left_to_pacer(retry_after: float) -> bool:
    """A hint the pacer's short pause stands for: whole seconds, under ``WINDOW_HINT``
    (in practice 1: "somewhere in (0, 1] s").  Waiting it out in full would let one 429
    in a job's last second add up to a second to the job, while the pacer has already
    paused and cut for it.  Exact hints and a window's (2 s or more, saying when it
    resets) are waited out: retrying before them only draws another 429."""
    return retry_after > 0 and not says_reset(retry_after)


def on_hint(
    state: PacingState,
    now: float,
    sent_at: float | None,
    retry_after: float | None,
    tuning: PacingTuning,
) -> PacingState:
    """Extend ``pause_until`` for a 429 with hint ``retry_after`` seen at ``now``."""
    if retry_after is None or retry_after <= 0:
        retry_after = 1  # no hint (or 0): as unsure as a rounded one, the short pause
    streak = state.streak
    if sent_at is not None and sent_at >= state.pause_began:
        streak += 1
    if says_reset(retry_after):
        wait = min(retry_after, tuning.max_hint_pause)
    else:
        # (The doublings bounded: 2 ** 1024 overflows a float, and a server refusing
        # for an hour takes the streak past that.)
        wait = min(tuning.max_pause * 2 ** min(max(streak - 1, 0), 1000), 1.0)
    end = now + wait
    if end <= state.pause_until:
        return attrs.evolve(state, streak=streak)
    return attrs.evolve(state, pause_until=end, pause_began=now, streak=streak)
