"""A blocking ``redis.Redis`` handed where a ``redis.asyncio.Redis`` belongs (``from redis
import Redis``, the classic slip).  It runs each command at once and returns its
result, so ``await`` on it raised TypeError after the command had run."""

from __future__ import annotations

import pytest
import redis as blocking_redis

from opentrain_async import ConfigurationError, RedisDedupeStore, RedisPacingBackend

from .redis_server import RedisServer


@pytest.mark.parametrize("kind", [RedisDedupeStore, RedisPacingBackend])
def test_a_blocking_redis_client_is_refused_at_construction(
    redis_server: RedisServer, kind: type
) -> None:
    """On main both were accepted: the dedupe store's first claim SET its key, then
    raised (503 for every delivery and retry: the event was never handled, and its key
    stayed "pending"); the pacing backend failed at the first send."""
    client = blocking_redis.Redis.from_url(redis_server.url)
    try:
        with pytest.raises(ConfigurationError, match=r"redis\.asyncio"):
            kind(client)
    finally:
        client.close()
