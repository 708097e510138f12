"""A search that starts above the limit goes back down (``curve.search_back``).

The first 429 starts the search from what got through so far, and a bucket's burst
gets through at once: read as a rate, the start can be many times the bucket's rate.
The search's first doubling does not cut (the server may still be answering the burst
that drew the first 429), and each short pause freezes the curve, so a search that
started too high went on sending at it, drew a 429 for most requests, and cut at last
to 0.71x of a doubled rate (seed 3073 of the family: 12x a bucket of 18/s after
1.8 s).  Now a 429 in that first doubling for a request sent after the search began,
while the limiter accepted others sent after it too, halves the start and searches
again.  Virtual time throughout (no real waiting).
"""

from __future__ import annotations

import pytest

from opentrain_async import OpenTrainClient, PacingFeedback, PacingState, PacingTuning
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.curve import SEARCH_BACK
from opentrain_async._pacing.samples import record
from opentrain_async.testing import FakeOpenTrain, FakeTime, TokenBucket

T = PacingTuning()
BEGAN = 10.05  # the search began (the end of the first 429's pause)
ROUND_TRIP = 0.03  # the first 429's, kept in ``recover`` while searching


def searching(*answered_at: float) -> PacingState:
    """A search started at 700/s (a burst read as a rate) at ``BEGAN``, with one success
    counted at each of ``answered_at``."""
    state = PacingState(
        limit=700.0,
        searching=True,
        origin=BEGAN,
        cut_at=BEGAN,
        recover=ROUND_TRIP,
        cuts=1,
        successes=100,
        successes_at_cut=100,
    )
    for at in answered_at:
        state = record(state, at, accepted=1, successes=state.successes + 1)
    return state


def refused(sent_at: float) -> PacingFeedback:
    return PacingFeedback(throttled=True, throttled_at=sent_at, retry_after=1.0)


def test_a_refusal_while_the_limiter_accepts_others_halves_the_start() -> None:
    """Answers a round trip after the search began were accepted, and a request sent
    after it began is refused within its first doubling: the start is above the limit,
    so the search starts again from half of it, still searching, the episode the same."""
    state = searching(10.11, 10.12)  # answers to requests sent after it began
    after = apply_report(state, 10.14, refused(10.09), None, T)  # its first doubling
    assert after.limit == pytest.approx(700.0 * SEARCH_BACK)
    assert after.searching
    assert after.cuts == state.cuts
    assert after.origin == after.cut_at == after.pause_until  # again once the pause ends
    # A 429 of a request sent at the old start does not halve it again.
    again = apply_report(after, 10.15, refused(10.13), None, T)
    assert again.limit == after.limit


def test_a_limiter_that_accepted_nothing_since_is_a_shut_one() -> None:
    """Only answers from before the search (a window shut until its reset accepts none
    of the search's requests): the 429 freezes the curve, the start stays."""
    state = searching(10.0, 10.06)
    after = apply_report(state, 10.14, refused(10.09), None, T)
    assert after.limit == state.limit
    assert after.searching


def test_the_first_bursts_own_429s_do_not_halve() -> None:
    """A request sent before the search began drew its 429 from the burst that drew the
    first one: nothing is learned from it."""
    state = searching(10.11, 10.12)
    after = apply_report(state, 10.14, refused(BEGAN - 0.01), None, T)
    assert after.limit == state.limit


async def test_a_bursty_bucket_is_learned_near_its_rate() -> None:
    """A bucket of 20/s with a burst of 60, hints rounded up to a second, 200 messages:
    the burst's 60 successes at once started the search at 600/s, which cut to 540/s
    and ended the job believing 243/s, with 172 429s.  Now the learned limit is within
    twice the bucket's rate and fewer than half the messages draw a 429."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(TokenBucket(rate=20, burst=60, integer_hints=True))
        convs = [server.add_conversation() for _ in range(200)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=time.clock, sleep=time.sleep
        ) as client:
            report = await client.send_all([(c, "x") for c in convs])
            limit = client.pacer.state.limit
        throttled = server.stats()["rate_limited"]
    assert report.sent == 200
    assert limit is not None
    assert limit <= 2 * 20, limit
    assert throttled < 100, throttled
