"""The reserve script on a real redis-server agrees with ``allowance`` where a window
resets unseen with sends unanswered: carried into the next if it granted them, not if
it only carried them (``tests/test_pacing_window_carried.py`` in process)."""

from __future__ import annotations

import attrs
import redis.asyncio as redis_asyncio

from .pacing_kit import lua_reserve_agrees
from .test_pacing_redis import redis_now
from .test_pacing_window_carried import HINT, W, carried


async def test_reserve_agrees_on_sends_carried_twice(redis: redis_asyncio.Redis) -> None:
    """A window past its hint that granted none of its own (its W carried, none
    answered) opens the next with none outstanding: W goes; one that granted them
    carries the 12 still unanswered."""
    now = await redis_now(redis)
    before = attrs.evolve(carried(now), win_opened=now - 1.5 * HINT)
    after, got, _, _ = await lua_reserve_agrees(redis, "carried", before, 16)
    assert after.win_opened > before.win_opened
    assert got.count == 16
    assert after.win_sent == 16
    now = await redis_now(redis)
    granted = attrs.evolve(
        carried(now),
        win_opened=now - 1.5 * HINT,
        win_granted=now - 1.2 * HINT,
        successes=1000 + W - 12,
    )
    after, got, _, _ = await lua_reserve_agrees(redis, "carried", granted, 16)
    assert after.win_opened > granted.win_opened
    assert after.win_sent - got.count == 12
