"""The Lua reserve script agrees with ``allowance`` on a stretch no pacer writes
(``tests/test_pacing_window_spread_corrupt.py`` in process): a hash whose
``win_stretch`` is infinite, huge, longer than the window or next to zero hands out
W's sends within the window, as Python does, not a first send at ``inf`` (which the
backend refused as unusable: every process paced alone until the window reopened)."""

from __future__ import annotations

import math

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_reserve
from opentrain_async._pacing.redis_backend import decode_state, encode_state

from .test_pacing_redis import assert_states_equal, redis_now, steady
from .test_pacing_window_spread_corrupt import HINT, STRETCHES, corrupt_window


@pytest.mark.parametrize("stretch", STRETCHES)
async def test_lua_spreads_a_corrupt_stretch_as_python_does(
    redis: redis_asyncio.Redis, stretch: float
) -> None:
    backend = steady(redis, "spread-corrupt")
    now = await redis_now(redis)
    for sent in (0, 1, 6):
        before = corrupt_window(now - 0.1, stretch, sent=sent)
        await redis.delete("spread-corrupt")
        await redis.hset("spread-corrupt", mapping=encode_state(before))
        got = await backend.in_redis._reserve(3, 0, None)
        after = decode_state(await redis.hgetall("spread-corrupt"))
        want_state, want = apply_reserve(before, got.now, 3, 0, None, backend.tuning)
        assert_states_equal(after, want_state)
        assert (got.count, got.interval) == (want.count, want.interval)
        assert math.isclose(got.first, want.first, abs_tol=1e-6)
        assert got.first <= now - 0.1 + HINT / 2 + 1e-6
