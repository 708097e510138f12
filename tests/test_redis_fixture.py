"""The Redis fixture itself: a real server that answers, dies on kill and comes back."""

from __future__ import annotations

import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from .redis_server import RedisServer


@pytest.mark.process
async def test_real_server_answers_and_survives_kill_and_restart(
    redis_server: RedisServer,
) -> None:
    r = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        assert await r.ping()
        await r.set("k", "v")
        redis_server.kill()
        with pytest.raises(RedisConnectionError):
            await r.get("k")
        redis_server.start()
        assert await r.get("k") is None  # a crash loses what was not persisted
    finally:
        await r.aclose()
