"""A search whose start was a bucket's burst read as a rate searches again from what the
limiter admitted since it began (pure functions, no clock but the one passed in).

The first 429 starts the search from what got through so far; a burst that got through
at once (19 successes in one 0.1 s sample: 190/s) is no rate.  With hints that say
nothing exact (a rounded second, none) every 429 of such a search fell in its first
doubling, which cuts nothing, and each short pause froze the curve there: a 5/s bucket
was sent to at 190/s for the whole job (seed 475 of ``benchmarks.family_sim``, three
429s per message once every rounded hint was retried at the pacer).
"""

from __future__ import annotations

import pytest

from opentrain_async import PacingFeedback, PacingState, PacingTuning
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.curve import rate

TUNING = PacingTuning()


def _searching_from_a_burst(now: float) -> PacingState:
    """The first 429 came at 10.0 after a burst of 19 in one sample: the search began at
    10.05 (its short pause's end) from 190/s; since then the limiter admitted one
    request per 0.2 s (5/s) while refusing the rest."""
    state = PacingState(accepted=(0,) * 9 + (19,), sample_at=9.9)
    first = PacingFeedback(throttled=True, throttled_at=9.99, retry_after=1.0)
    state = apply_report(state, 10.0, first, None, TUNING)
    assert state.searching
    assert state.limit == pytest.approx(190.0)
    t = 10.05
    while t < now - 1e-9:  # one success per 0.2 s, each admitted a round trip before
        t += 0.2
        state = apply_report(state, t, PacingFeedback(successes=1), None, TUNING)
    return state


def test_a_search_far_above_what_the_limiter_admits_searches_again_from_there() -> None:
    """A 429 with a rounded hint, for a request sent in the search, once the limiter
    admitted some of the search's requests at a twentieth of its rate: the search
    starts again near what was admitted (5/s), still searching, no cut counted, and
    doubles no faster than one request per doubling at that start."""
    state = _searching_from_a_burst(10.65)
    refused = PacingFeedback(throttled=True, throttled_at=10.6, retry_after=1.0)
    after = apply_report(state, 10.66, refused, None, TUNING)
    assert after.searching
    assert after.cuts == state.cuts
    assert after.limit is not None
    assert 3.0 <= after.limit <= 7.0, after.limit
    assert after.cut_at >= 10.66  # the slots of the old start are an earlier volley's
    assert after.recover == pytest.approx(1 / after.limit)
    climbed = rate(after, after.origin + 0.1, TUNING)
    assert climbed is not None
    assert climbed < 1.9 * after.limit  # not doubled per 0.1 s from a start this slow


def test_with_no_hint_too() -> None:
    """No hint says no more than a rounded second: the same reading."""
    state = _searching_from_a_burst(10.65)
    refused = PacingFeedback(throttled=True, throttled_at=10.6)
    after = apply_report(state, 10.66, refused, None, TUNING)
    assert after.searching
    assert after.limit is not None
    assert after.limit <= 7.0


def test_a_429_of_a_request_sent_before_the_search_reads_nothing() -> None:
    """The first burst's own 429s, answered late, say nothing of the search's pace."""
    state = _searching_from_a_burst(10.65)
    late = PacingFeedback(throttled=True, throttled_at=9.995, retry_after=1.0)
    after = apply_report(state, 10.66, late, None, TUNING)
    assert after.limit == pytest.approx(190.0)


def test_a_shut_limiter_reads_nothing() -> None:
    """A window shut until its reset admits nothing of the search: no reading, the
    search keeps its start (its reset admits at the pace the search is at)."""
    state = PacingState(accepted=(0,) * 9 + (19,), sample_at=9.9)
    first = PacingFeedback(throttled=True, throttled_at=9.99, retry_after=1.0)
    state = apply_report(state, 10.0, first, None, TUNING)
    refused = PacingFeedback(throttled=True, throttled_at=10.6, retry_after=1.0)
    after = apply_report(state, 10.66, refused, None, TUNING)
    assert after.limit == pytest.approx(190.0)


def test_a_search_near_what_the_limiter_admits_is_left_to_its_own_cut() -> None:
    """Admitted at more than half the search's start: the start was a fair lower bound,
    and the search's own cut (past its first doubling) ends it as before."""
    state = PacingState(accepted=(0,) * 9 + (2,), sample_at=9.9)
    first = PacingFeedback(throttled=True, throttled_at=9.99, retry_after=1.0)
    state = apply_report(state, 10.0, first, None, TUNING)
    start = state.limit
    assert start is not None
    t = 10.05
    while t < 10.65:
        t += 0.1
        state = apply_report(state, t, PacingFeedback(successes=1), None, TUNING)
    refused = PacingFeedback(throttled=True, throttled_at=10.6, retry_after=1.0)
    after = apply_report(state, 10.66, refused, None, TUNING)
    assert after.limit is not None
    assert after.limit >= start
