"""The Lua report reads the accepted rate as ``samples.accepted_rate`` does, where it
decides a cut: past the search, a new episode's 429 cuts to what the server accepted
since the curve's origin, and the origin falls inside a 0.1 s sample bucket.  The broad
agreement test (tests/test_pacing_redis.py) passed a Lua ``accepted_rate`` that prorated
the origin's bucket while Python did not: its random states rarely cut on the measured
rate.  These do, and the test counts the cases whose cut depends on that bucket."""

from __future__ import annotations

import math
import random

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.state import (
    SAMPLE_BUCKETS,
    SAMPLE_SECONDS,
    PacingFeedback,
    PacingState,
)

from .test_pacing_redis import assert_states_equal, random_state, redis_now, steady

KEY = "agree-measured-cut"


def _measured_cut_case(rng: random.Random, now: float) -> tuple[PacingState, PacingFeedback]:
    """A limit known and past the search, the sender offering the pace and the server
    accepting part of it, the origin somewhere in the last second; a new episode's 429
    with an exact hint."""
    limit = rng.uniform(100, 3000)
    per_bucket = limit * SAMPLE_SECONDS
    share = rng.uniform(0.4, 0.6)
    state = attrs.evolve(
        random_state(rng, now),
        limit=limit,
        searching=False,
        cuts=2,
        window_hint=0.0,
        win_size=0,
        pause_until=0.0,
        origin=now - rng.uniform(0.12, 0.24),
        cut_at=now - rng.uniform(1.0, 3.0),
        sample_at=math.floor(now / SAMPLE_SECONDS) * SAMPLE_SECONDS,
        accepted=tuple(int(per_bucket * share * rng.uniform(0.8, 1.2)) for _ in range(10)),
        offered=tuple(int(per_bucket * rng.uniform(0.9, 1.3)) for _ in range(10)),
    )
    feedback = PacingFeedback(
        throttled=True,
        throttled_at=now - rng.uniform(0.0, 0.02),
        retry_after=rng.uniform(0.001, 0.02),
    )
    return state, feedback


def _origin_bucket_doubled(state: PacingState) -> PacingState:
    """The same state with the count of the sample bucket holding the origin doubled
    (bucket ``i`` starts ``SAMPLE_BUCKETS - 1 - i`` buckets before ``sample_at``)."""
    before = max(0, math.ceil(round((state.sample_at - state.origin) / SAMPLE_SECONDS, 9)))
    accepted = list(state.accepted)
    accepted[SAMPLE_BUCKETS - 1 - before] = 2 * accepted[SAMPLE_BUCKETS - 1 - before] + 5
    return attrs.evolve(state, accepted=tuple(accepted))


async def test_the_report_script_reads_the_origin_bucket_as_python_does(
    redis: redis_asyncio.Redis,
) -> None:
    backend = steady(redis, KEY)
    rng = random.Random(2026_12_07)
    depends = 0
    for _ in range(200):
        now = await redis_now(redis)
        before, feedback = _measured_cut_case(rng, now)
        await redis.delete(KEY)
        await redis.hset(KEY, mapping=encode_state(before))
        got = await backend.in_redis._report(feedback, None)
        assert decode_state(await redis.hgetall(KEY)) == got
        assert backend.in_redis._last is not None
        now = backend.in_redis._last[1]
        want = apply_report(before, now, feedback, None, backend.tuning)
        assert_states_equal(got, want)
        other = apply_report(_origin_bucket_doubled(before), now, feedback, None, backend.tuning)
        depends += other.limit != want.limit
    # The cut read the origin's bucket in many cases (else this test would say nothing).
    assert depends >= 40, depends
