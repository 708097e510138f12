"""The Lua reserve script agrees with ``allowance`` on a stretch no pacer writes
(``tests/test_pacing_window_spread_corrupt.py`` in process): a hash whose
``win_stretch`` is infinite, huge, longer than the window or next to zero hands out
W's sends within the window, as Python does, not a first send at ``inf`` (which the
backend refused as unusable: every process paced alone until the window reopened)."""

from __future__ import annotations

import pytest
import redis.asyncio as redis_asyncio

from .pacing_kit import lua_reserve_agrees
from .test_pacing_redis import redis_now
from .test_pacing_window_spread_corrupt import HINT, STRETCHES, corrupt_window


@pytest.mark.parametrize("stretch", STRETCHES)
async def test_lua_spreads_a_corrupt_stretch_as_python_does(
    redis: redis_asyncio.Redis, stretch: float
) -> None:
    now = await redis_now(redis)
    for sent in (0, 1, 6):
        before = corrupt_window(now - 0.1, stretch, sent=sent)
        _, got, _, _ = await lua_reserve_agrees(redis, "spread-corrupt", before, 3)
        assert got.first <= now - 0.1 + HINT / 2 + 1e-6
