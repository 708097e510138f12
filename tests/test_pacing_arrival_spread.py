"""A lone 429 that the arrival spread explains does not cut the learned limit.

Requests sent evenly reach the server bunched when their latency varies, so a token
bucket with no burst refuses a few of them at any rate.  Each such 429 used to start a
new episode and cut, and the rate ratcheted down to a crawl (family_sim seed 319: a
2,553/s bucket, 44 ms +-37%, paced at 70/s).  Virtual time throughout.
"""

from __future__ import annotations

import random

import attrs
import pytest

from opentrain_async import Pacer, PacingFeedback, PacingState, PacingTuning
from opentrain_async._pacing import apply_report
from opentrain_async._pacing.spread import ArrivalSpread
from opentrain_async.testing import FakeTime


def test_the_spread_is_estimated_from_round_trips() -> None:
    """Round trips of 40 ms +- 25% (one way: 20 ms +- 5 ms, arrivals spread over
    10 ms): the estimate lands near 10 ms; steady round trips spread nothing."""
    rng = random.Random(7)
    jittery, steady = ArrivalSpread(), ArrivalSpread()
    for _ in range(500):
        jittery.answered(2 * (0.020 + rng.uniform(-0.005, 0.005)), accepted=True)
        steady.answered(0.040, accepted=True)
    assert 0.007 < jittery.seconds < 0.013
    assert steady.seconds == 0.0
    assert steady.explains(1e6) is False  # no spread: every 429 is the limit's


def test_only_a_lone_429_is_the_spreads() -> None:
    """A 429 right after another one says the limit is lower, whatever the spread."""
    spread = ArrivalSpread()
    for trip in (0.01, 0.05) * 20:
        spread.answered(trip, accepted=True)
    assert spread.explains(200.0)
    assert not spread.explains(1.0)  # sends a second apart do not overlap 20 ms
    spread.answered(0.03, accepted=False)
    assert not spread.explains(200.0)


def test_a_spread_429_is_counted_and_nothing_else() -> None:
    """In the pure report (and so in the Redis script, held to it by the agreement
    test): counted, its successes recorded, no pause, no cut, the curve not frozen."""
    tuning = PacingTuning()
    state = attrs.evolve(
        PacingState(), limit=100.0, searching=False, origin=10.0, cut_at=10.0, successes=50
    )
    after = apply_report(
        state,
        12.0,
        PacingFeedback(successes=3, throttled=True, throttled_at=11.9, spread=True),
        None,
        tuning,
    )
    assert after.throttles == 1
    assert after.successes == 53
    assert (after.limit, after.cuts, after.origin, after.pause_until) == (
        state.limit,
        state.cuts,
        state.origin,
        state.pause_until,
    )
    limit_429 = apply_report(
        state, 12.0, PacingFeedback(throttled=True, throttled_at=11.9), None, tuning
    )
    assert limit_429.cuts == state.cuts + 1  # the same 429 from the limit cuts


async def _paced_with_round_trips(time: FakeTime, trips: list[float]) -> Pacer:
    """A pacer past its search (a first 429, a cut), then answers with these round
    trips, the last one accepted."""
    pacer = Pacer(tuning=PacingTuning(doubling=0.01), clock=time.clock, sleep=time.sleep)
    for _ in range(20):
        pacer.on_success(await pacer.acquire())
    first = await pacer.acquire()
    time.now += 0.01  # a round trip of one doubling: the search keeps its pace
    await pacer.on_throttle(first, 0.001)
    time.now += 0.15
    for _ in range(20):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), 0.001)
    assert not pacer.state.searching
    time.now += 0.01
    for trip in trips:
        sent = await pacer.acquire()
        time.now += trip
        pacer.on_success(sent)
    return pacer


@pytest.mark.parametrize("jitter", [True, False])
async def test_a_lone_429_cuts_only_where_arrivals_do_not_overlap(jitter: bool) -> None:
    """With round trips of 10-90 ms at the learned pace, a lone 429 neither pauses nor
    cuts, a second in a row cuts; with steady round trips the first one cuts, as
    before."""
    time = FakeTime(start=100.0)
    trips = [0.01, 0.09] * 100 if jitter else [0.05] * 200
    pacer = await _paced_with_round_trips(time, trips)
    rate = pacer.current_rate()
    assert rate is not None
    assert (pacer.spread.seconds * rate >= 1) is jitter  # sends closer than the spread
    cuts, limit, throttles = pacer.state.cuts, pacer.state.limit, pacer.state.throttles
    await pacer.on_throttle(await pacer.acquire(), None)
    assert pacer.state.throttles == throttles + 1
    if not jitter:
        assert pacer.state.cuts == cuts + 1
        return
    assert (pacer.state.cuts, pacer.state.limit) == (cuts, limit)
    assert pacer.pause_remaining() <= 0  # no pause either
    await pacer.on_throttle(await pacer.acquire(), None)
    assert pacer.state.cuts == cuts + 1
