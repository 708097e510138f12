"""The report script on a real redis-server reads the accepted rate as
``samples.accepted_rate`` does where the curve's origin falls inside a sample bucket
(``tests/test_pacing_origin_bucket.py`` in process): only that bucket's share after
the origin counts, so the cut learns what the limiter admitted since."""

from __future__ import annotations

import math

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.samples import record
from opentrain_async._pacing.state import SAMPLE_SECONDS, PacingFeedback, PacingState

from .test_pacing_redis import assert_states_equal, redis_now, steady


async def test_a_cut_after_a_pause_reads_only_the_origins_share(
    redis: redis_asyncio.Redis,
) -> None:
    """A pause that ended 5 ms before its sample bucket did, 30 answers of the burst
    before it in that bucket, then 100/s admitted of 300/s offered: a 429 cuts to about
    100/s (the burst counted whole read 200-370/s, above the 150/s that drew it)."""
    backend = steady(redis, "origin-bucket")
    now = await redis_now(redis)
    bucket = math.floor(now / SAMPLE_SECONDS) * SAMPLE_SECONDS
    origin = bucket - SAMPLE_SECONDS - 0.005
    before = attrs.evolve(
        PacingState(), limit=150.0, searching=False, origin=origin, cut_at=origin, successes=30
    )
    before = record(before, origin - 0.08, accepted=30, offered=30)
    k = 0
    while origin + k / 100 < now:
        before = record(before, origin + k / 100, accepted=1, offered=3, successes=31 + k)
        k += 1
    feedback = PacingFeedback(throttled=True, throttled_at=now - 0.001)
    await redis.delete("origin-bucket")
    await redis.hset("origin-bucket", mapping=encode_state(before))
    got = await backend.in_redis._report(feedback, None)
    assert got == decode_state(await redis.hgetall("origin-bucket"))
    assert backend.in_redis._last is not None
    want = apply_report(before, backend.in_redis._last[1], feedback, None, backend.tuning)
    assert_states_equal(got, want)
    assert got.cuts == 1
    assert got.limit is not None
    assert got.limit <= 1.15 * 100.0
