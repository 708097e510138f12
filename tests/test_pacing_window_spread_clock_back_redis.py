"""The Lua reserve script agrees with ``allowance`` on a window that opened ahead of
Redis's now, its clock gone back (``tests/test_pacing_window_spread_clock_back.py`` in
process): W's sends at once, not held until the old clock's time comes again."""

from __future__ import annotations

import math

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_reserve
from opentrain_async._pacing.redis_backend import decode_state, encode_state

from .test_pacing_redis import assert_states_equal, redis_now, steady
from .test_pacing_window_spread_clock_back import opened_ahead


@pytest.mark.parametrize("back", [5.0, 100.0])
async def test_lua_sends_at_once_from_a_window_opened_ahead(
    redis: redis_asyncio.Redis, back: float
) -> None:
    backend = steady(redis, "spread-back")
    now = await redis_now(redis)
    before = opened_ahead(now, back, 3)
    await redis.hset("spread-back", mapping=encode_state(before))
    got = await backend.in_redis._reserve(4, 0, None)
    after = decode_state(await redis.hgetall("spread-back"))
    want_state, want = apply_reserve(before, got.now, 4, 0, None, backend.tuning)
    assert_states_equal(after, want_state)
    assert (got.count, got.interval) == (want.count, want.interval)
    assert math.isclose(got.first, want.first, abs_tol=1e-6)
    assert got.count == 4
