"""A 429's cut (pure functions): whether it opens an episode, and how far it cuts.

``backend.apply_report`` applies a 429's pause first, then, once per episode, the cut
here: from the rate that drew the 429 and what the server accepted (``cut_episode``),
no lower than a wall's window (``wall_cut``), within a bucket's exact hints
(``hint_bound``), or the search started again where a burst misled it
(``search_admits``).  The Redis report script mirrors each (``pacing_report.lua``).
"""

from __future__ import annotations

import attrs

from .allowance import window_average
from .curve import bounded, cut, doubling, search_period, trust_accepted
from .curve import rate as curve_rate
from .pause import WINDOW_SLOTS, bucket_bound
from .samples import accepted_rate, accepted_since, wall_rate
from .state import PacingFeedback, PacingState, PacingTuning

__all__ = [
    "BOUND_SPAN",
    "SEARCH_ABOVE",
    "SEARCH_CUTS",
    "WALL_RESET",
    "current_rate",
    "cut_episode",
    "hint_bound",
    "new_episode",
    "search_admits",
]


def current_rate(
    state: PacingState, now: float, tuning: PacingTuning, cap: float | None = None
) -> float | None:
    """Requests/second allowed at ``now``: the curve's rate, capped by a stated limit."""
    rate = curve_rate(state, now, tuning)
    if cap is None:
        return rate
    return cap if rate is None else min(rate, cap)


BOUND_SPAN = 1.0
"""Seconds of successes a bucket's bound is never set below."""
SEARCH_CUTS = 2
"""The first 429's cut and the one that ends the search: a bucket's hints bound the
limit until then."""
WALL_RESET = 0.5
"""A wall's rounded hint of h seconds says its reset comes within (h - 1, h] after the
answer (the wait rounded up): the guess is this far before h, the middle of that second
(``wall_cut``).  On tuning seeds 0-499 of the 2 s family the second's end (a sound
lower bound of the rate) gained a third as much; the samples over one second (higher)
gained as much and drew more 429s (seeds 3000-3499: p90 95.6% -> 96.2%)."""


def new_episode(
    state: PacingState, now: float, feedback: PacingFeedback, tuning: PacingTuning
) -> bool:
    """One cut per episode: a 429 cuts only for a request admitted after the last cut,
    with a success since it, and (while searching) not in the search's first doubling,
    when the server may still be recovering from the burst that drew the first 429
    (unless the hint was a window's, which everyone waited out)."""
    sent_at = feedback.throttled_at
    return (
        sent_at is not None
        and sent_at > state.cut_at
        and state.successes > state.successes_at_cut
        and not (
            state.searching
            and now - state.origin < search_period(state, tuning)
            and not state.window_hint
        )
    )


def _measured_rate(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    drew: float,
    resume: float,
    cap: float | None,
    tuning: PacingTuning,
) -> float | None:
    """What the server accepted just before a new episode's 429 (or a window's average),
    for the cut (``cut_episode``); None when it is no reading of the limit."""
    # The server's granularity (its hint) sets how far back to look: a longer
    # window dilutes the burst a bucket adds to what it accepts.
    span = min(max(0.25, feedback.retry_after or 0.0), 1.0)
    if doubling(state, now, tuning):  # a steep climb: only the latest counts
        span = 0.15
    accepted, offered = accepted_rate(state, now, span)
    paced = current_rate(state, now - span / 2, tuning, cap) or drew
    measured = accepted if trust_accepted(offered, paced) else None
    since = resume - state.cut_at
    if state.window_hint and since > 0:
        # A window of seconds: what it lets through is its average from reset to
        # reset (each pause on its hint ends just after one), however it bunched
        # them; that is the limit when the rate that drew the 429 was a burst.
        # Paced near that average, the 429 only says "a little slower" (what got
        # through was what was offered): the drawing rate is the limit.
        average = window_average(state, since)
        measured = average if drew > 2 * average else None
    return measured


def wall_cut(state: PacingState, now: float, hint: float | None) -> PacingState:
    """A cut for a wall's 429 (``PacingFeedback.walled``) with a rounded hint: no lower
    than the rate of a window that let through what the samples hold (at most the last
    second) from the first of them to the reset the hint names (``WALL_RESET``).

    A wall refuses every rate, so the rate that drew its 429 and what was accepted just
    before (nothing: the wall) say nothing of the limit, and the cut read the floor of
    ``curve.cut`` (half the drawing rate): 15 processes on a fixed window of 48 per
    1.09 s with hints rounded to 1 s crawled at 10-12/s for 4 s after the wall lifted
    (``benchmarks.family_timeline 668 --max-window 2``: 4.56x; 1.56x with exact hints).
    What the window does say: it let W through, then nothing until its reset, which the
    hint bounds.  A bucket's wall reads its burst plus its rate this way, so it too
    climbs back above its rate sooner, and its next 429s cut it as any.  A wall with no
    hint (or 0) is left as it was: nothing bounds its reset."""
    if hint is None or hint < 1 or state.limit is None:
        return state
    carried = wall_rate(state, now, now + hint - WALL_RESET)
    if carried is None or carried <= state.limit:
        return state
    return attrs.evolve(state, limit=carried)


def hint_bound(
    state: PacingState, now: float, hint: float | None, pace: float | None
) -> float | None:
    """``pause.bucket_bound`` unless the longest hint was a window's length at ``pace``
    or the limiter let through more than such a bucket could over ``BOUND_SPAN``: the
    hint is a sliding window's (the wait for its oldest slot), or a limit changed."""
    bound = bucket_bound(state, hint)
    if bound is not None and pace is not None and pace >= WINDOW_SLOTS * bound:
        return None
    if bound is not None and accepted_rate(state, now, BOUND_SPAN, since_origin=False)[0] > bound:
        return None
    return bound


SEARCH_ABOVE = 0.5
"""A search whose start is more than twice what the limiter admitted since it began
starts again from that (``search_admits``): within a doubling the two are the same
reading of an unknown limit, the search's own climb; past it the start was no lower
bound of the limit."""


def search_admits(
    state: PacingState, now: float, feedback: PacingFeedback, tuning: PacingTuning
) -> float | None:
    """What the limiter admitted per second since the search began, when a 429 for a
    request sent in the search says the search's start is far above it; None otherwise.

    The search starts from what got through before the first 429 and doubles until the
    next one, on the premise that it starts below the limit.  A bucket's burst gets
    through at once and is read as a rate (``samples.first_estimate``: 19 successes in
    one sample are 190/s), and then every 429 of the search falls in its first
    doubling, which cuts nothing (``new_episode``), each short pause freezing the
    curve there, so it went on at that start for good: seed 475 of the family, a 5/s
    bucket behind a burst of 19, drew three 429s per message.  The limiter's own
    answers since say where it is: counted from a round trip (``recover``) after the
    search began (answers of requests sent before it land in that round trip) over the
    time since, pauses included (a saturated limiter admits its rate, whatever the
    sender's pauses).  A window shut until its reset admits nothing, and then says
    nothing: only a limiter that admits requests of the search yet refuses its pace
    is read.  Once a window reopens, though, its wall is in the reading: a sliding
    window of 140/s with rounded hints read 2.4/s at its first slot freed (seed 68 of
    the 2 s family, 1.63x -> 2.25x); counted from the first admission instead, the
    family kept fewer of the 429s (``benchmarks/pacing-experiments.md``, roundretry)."""
    sent_at = feedback.throttled_at
    if (
        not state.searching
        or state.limit is None
        or state.window_hint
        or sent_at is None
        or sent_at <= state.cut_at
    ):
        return None
    admitted, seconds = accepted_since(state, now, state.cut_at + state.recover)
    if admitted <= 0 or seconds < search_period(state, tuning):
        return None
    admits = admitted / seconds
    return admits if admits < SEARCH_ABOVE * state.limit else None


def cut_episode(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    drew: float,
    windowed: bool,
    resume: float,
    cap: float | None,
    tuning: PacingTuning,
    bound: float | None,
    tat: float,
) -> PacingState:
    """A new episode's cut: the limit from ``drew`` (the rate that drew the 429) and
    what the server accepted (``_measured_rate``), the curve restarted at ``resume``; no
    lower than a wall's window (``wall_cut``); the slots handed out before it (up to
    ``tat``: reserved at the old rate, other processes may still be sending on them, so
    their 429s are this episode's); then, while the search has not ended, a bucket's
    ``bound``."""
    admitted = now if feedback.throttled_at is None else min(feedback.throttled_at, now)
    delay = now - admitted
    if windowed and state.window_hint and state.limit is not None:
        # A window's 429s (its probe's, a burst past a W that shrank) come from
        # bursts, not from the curve it sets aside: they drew at the limit at
        # least.  At the curve's rate each window's probe cut the limit by
        # ``beta``, until the window's own hint looked short at it (fewer than
        # ``WINDOW_SLOTS`` slots) and the mode was dropped, at half the speed.
        drew = max(drew, state.limit)
    measured = _measured_rate(state, now, feedback, drew, resume, cap, tuning)
    state = cut(state, now, drew, measured, feedback.retry_after, resume, tuning, delay)
    if feedback.walled and not windowed:
        state = wall_cut(state, now, feedback.retry_after)
    state = attrs.evolve(state, cut_at=max(state.cut_at, tat))
    if bound is None or state.cuts > SEARCH_CUTS:
        return state
    return bounded(state, now, bound, None, None, resume, tuning, delay)
