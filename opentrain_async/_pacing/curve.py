"""The rate curve: search, cut and CUBIC, as pure functions of (state, now).

* **Search.**  The first 429 sets ``limit`` to what got through so far (an
  underestimate) and the rate doubles every ``doubling`` seconds from the curve's origin
  until the next 429 says where the limit is.
* **Cut.**  A later 429 (once per episode) remembers the lower of the rate that drew it
  and what the server accepted just before (CUBIC's W_max), trusting the accepted rate
  only when the sender was offering at least half the paced rate (an idle sender
  accepted little because it sent little).  The curve restarts at ``beta * limit``.
* **CUBIC.**  ``rate = limit * (1 + c * (dt - recover)**3)`` with
  ``c = (1 - beta) / recover**3``: back to ``limit`` after ``recover`` seconds, then
  probing above it; past ``2 * recover`` with no 429 the limit has likely risen, and
  the rate doubles every ``doubling`` seconds from there, so a raised limit is found
  within a second.
* **Climb.**  A one-token bucket's spread 429s at a very low refused share say the
  limit is far above: the curve goes into its doubling at once (``climb``).
* **Freeze.**  Time the sender spends idle or paused without a cut does not move the
  curve: ``origin`` moves forward by it, so a consumer pause forgets nothing.

The Redis backend mirrors these functions in Lua; keep them small and branch-light.
"""

from __future__ import annotations

import attrs

from .state import PacingState, PacingTuning

__all__ = [
    "MIN_RATE",
    "SEARCH_FLOOR",
    "bounded",
    "climb",
    "cut",
    "doubling",
    "first_cut",
    "freeze",
    "frozen_origin",
    "rate",
    "search_again",
    "trust_accepted",
]

MIN_RATE = 0.5
"""No learned limit goes below this (requests/second): one request per two seconds."""
_MAX_DOUBLINGS = 30.0  # 2**30 is far past any server's limit and keeps the curve finite
_MAX_DT = 60.0  # seconds of climb counted: past it the doubling cap binds anyway
_TRUST_OFFERED = 0.5  # the accepted rate counts when at least this share of the pace was offered
_MAX_CUT = 0.5  # one episode cuts to no less than this share of the drawing rate
SEARCH_FLOOR = 2**-0.5
"""A search's cut: no lower than the middle of its last two doublings (this share of the
rate that drew the 429)."""


def rate(state: PacingState, now: float, tuning: PacingTuning) -> float | None:
    """Requests/second the curve allows at ``now``; None before the first 429."""
    limit = state.limit
    if limit is None:
        return None
    dt = now - state.origin
    if dt < 0:
        dt = 0.0
    if state.searching:
        return float(limit * 2 ** min(dt / search_period(state, tuning), _MAX_DOUBLINGS))
    recover = state.recover or tuning.recover
    cubic = (1 - tuning.beta) / recover**3
    dt = min(dt, _MAX_DT)
    if dt <= 2 * recover:
        return float(limit * (1 + cubic * (dt - recover) ** 3))
    # Past twice the recovery time without a 429 the limit has likely risen: search
    # again, doubling from where the cubic curve is (1 + (1 - beta)) * limit.
    over = min((dt - 2 * recover) / tuning.doubling, _MAX_DOUBLINGS)
    return float(limit * (2 - tuning.beta) * 2**over)


def search_period(state: PacingState, tuning: PacingTuning) -> float:
    """Seconds per doubling while searching: at least one round trip (``recover``
    holds it while searching), so each doubling is heard of before the next."""
    return max(state.recover, tuning.doubling)


def doubling(state: PacingState, now: float, tuning: PacingTuning) -> bool:
    """True while the rate doubles (the search, or a probe past twice the recovery)."""
    if state.searching:
        return True
    return now - state.origin > 2 * (state.recover or tuning.recover)


def climb(state: PacingState, now: float, tuning: PacingTuning) -> PacingState:
    """A one-token bucket's limit lies far above the rate (``ArrivalSpread.far``): a
    curve past its search and not yet doubling goes into its doubling now (its origin
    two recoveries back), instead of holding its plateau for those two recoveries (3 s
    after a whole hint's cut).  The next pair of 429s over ``RUN_SHARE`` refused cuts
    it as before."""
    if state.limit is None or doubling(state, now, tuning):
        return state
    return attrs.evolve(state, origin=now - 2 * (state.recover or tuning.recover))


def first_cut(
    state: PacingState, now: float, local_rate: float | None, resume: float, delay: float = 0.0
) -> PacingState:
    """The first 429: start searching up from ``local_rate`` (what got through so far)
    once the pause is over (``resume``)."""
    return attrs.evolve(
        state,
        limit=max(local_rate or MIN_RATE, MIN_RATE),
        searching=True,
        origin=resume,
        recover=delay,
        cut_at=resume,
        cuts=state.cuts + 1,
        successes_at_cut=state.successes,
    )


def search_again(state: PacingState, admits: float, resume: float, tat: float) -> PacingState:
    """The search's start was far above what the limiter ``admits``: search again from
    there once the pause is over (``resume``), still searching, the episode the same
    (no cut counted).  Slots handed out before (up to ``tat``) went at the old start:
    their 429s say nothing of the new one.  It doubles no faster than one request per
    doubling at that start (``recover``, the search's period; at least a round trip
    already): a doubling per 0.1 s from 2/s was at 64/s before its first request was
    answered, untested."""
    limit = max(admits, MIN_RATE)
    return attrs.evolve(
        state,
        limit=limit,
        recover=max(state.recover, 1.0 / limit),
        origin=resume,
        cut_at=max(resume, tat),
        successes_at_cut=state.successes,
    )


def cut(
    state: PacingState,
    now: float,
    drew: float,
    accepted: float | None,
    hint: float | None,
    resume: float,
    tuning: PacingTuning,
    delay: float = 0.0,
) -> PacingState:
    """A new episode's 429: remember the limit, restart the cubic curve at ``resume``.

    ``drew`` is the rate that drew the 429; ``accepted`` what the server accepted per
    second just before, or None when that says nothing (see ``trust_accepted``).  A
    probe above the limit costs its request the hint, so with long hints the curve
    climbs back more slowly.  So it does over long round trips (``delay``, from the
    429's admission to its answer): each probe above the limit is heard of a round trip
    late, and every request sent meanwhile draws a 429.
    """
    limit = drew if accepted is None else min(drew, accepted)
    window = state.window_hint > 0
    if not window:
        # One episode cuts at most in half: a sender stalled for part of the measured
        # span (a busy machine, a blocking call) accepted less than the server allowed,
        # and a real drop is followed within a moment by the next episode.  (A window's
        # average is measured from reset to reset, so it stands.)
        limit = max(limit, _MAX_CUT * drew)
    if doubling(state, now, tuning) and not window:
        # The rate one doubling ago drew no 429 and this one did: the limit lies between,
        # and their geometric middle is the best guess; the accepted rate averages the
        # whole climb and so lags behind (it counts only when higher).
        limit = max(limit, drew * SEARCH_FLOOR)
    recover = max(
        tuning.recover,
        3.0 * state.window_hint,
        1.5 * (hint or 0.0),
        tuning.recover_round_trips * delay,
    )
    return attrs.evolve(
        state,
        limit=max(limit, MIN_RATE),
        searching=False,
        origin=resume,
        recover=recover,
        cut_at=resume,
        cuts=state.cuts + 1,
        successes_at_cut=state.successes,
    )


def bounded(
    state: PacingState,
    now: float,
    bound: float,
    drew: float | None,
    hint: float | None,
    resume: float,
    tuning: PacingTuning,
    delay: float = 0.0,
) -> PacingState:
    """A bucket's exact hint says the limit is at most ``bound`` now: a search ends
    there (or at the rate that drew it, if lower: no doubling past what the limiter
    named), and a learned limit above it comes down to it (the curve keeps its
    origin).  Past the search a rise is still found by the curve's probes above it."""
    if state.searching:
        searched = rate(state, now, tuning)
        if searched is not None and bound >= searched:
            return state  # a loose bound (a token had nearly refilled): search on
        low = bound if drew is None else min(drew, bound)
        state = cut(state, now, low, None, hint, resume, tuning, delay)
        return _at_limit(state, resume, tuning, delay)
    if state.limit is None or bound >= state.limit:
        return state
    state = attrs.evolve(state, limit=max(bound, MIN_RATE))
    return _at_limit(state, resume, tuning, delay) if state.origin >= resume else state


NAMED_ROUND_TRIPS = 5.0
"""A limit a bucket's hint named is climbed past in this many round trips at least."""


def _at_limit(state: PacingState, resume: float, tuning: PacingTuning, delay: float) -> PacingState:
    """The curve from ``resume`` at its limit, not ``beta`` below: a limit the limiter
    named (an upper bound, and close) is not a guess to climb back to; and it probes
    above it sooner (a limit that rose is found by probing only)."""
    recover = max(tuning.recover, NAMED_ROUND_TRIPS * delay)
    return attrs.evolve(state, origin=resume - recover, recover=recover)


def trust_accepted(offered: float, paced: float) -> bool:
    """The accepted rate is evidence of the limit only when the sender offered at least
    half of ``paced``, the curve's rate over the measured span (an idle or stalled
    sender accepted little because it sent little)."""
    return offered >= _TRUST_OFFERED * paced


def frozen_origin(state: PacingState, begin: float, end: float) -> float:
    """The curve's origin once frozen from ``begin`` to ``end``: moved forward by the
    part of that span after the origin (none before the first 429)."""
    stalled = end - max(begin, state.origin)
    if stalled <= 0 or state.limit is None:
        return state.origin
    return state.origin + stalled


def freeze(state: PacingState, begin: float, end: float) -> PacingState:
    """The curve does not move from ``begin`` to ``end`` (idle or paused without a cut)."""
    origin = frozen_origin(state, begin, end)
    return state if origin == state.origin else attrs.evolve(state, origin=origin)
