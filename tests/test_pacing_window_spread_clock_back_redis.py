"""The Lua reserve script agrees with ``allowance`` on a window that opened ahead of
Redis's now, its clock gone back (``tests/test_pacing_window_spread_clock_back.py`` in
process): W's sends at once, not held until the old clock's time comes again."""

from __future__ import annotations

import pytest
import redis.asyncio as redis_asyncio

from .pacing_kit import lua_reserve_agrees
from .test_pacing_redis import redis_now
from .test_pacing_window_spread_clock_back import opened_ahead


@pytest.mark.parametrize("back", [5.0, 100.0])
async def test_lua_sends_at_once_from_a_window_opened_ahead(
    redis: redis_asyncio.Redis, back: float
) -> None:
    now = await redis_now(redis)
    _, got, _, _ = await lua_reserve_agrees(redis, "spread-back", opened_ahead(now, back, 3), 4)
    assert got.count == 4
