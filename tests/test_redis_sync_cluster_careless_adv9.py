"""adv9: adv8 refused a blocking ``redis.Redis`` (d8c0db1); a blocking
``redis.cluster.RedisCluster`` (``from redis.cluster import RedisCluster``, the same slip
on a cluster, whose class is no ``redis.Redis``) was still accepted."""

from __future__ import annotations

from unittest import mock

import pytest
from redis.cluster import RedisCluster

from opentrain_async import ConfigurationError, RedisDedupeStore, RedisPacingBackend


@pytest.mark.parametrize("kind", [RedisDedupeStore, RedisPacingBackend])
def test_a_blocking_redis_cluster_client_is_refused_at_construction(kind: type) -> None:
    """On 9bcd1d0 both took it: each command ran at once and its result was awaited
    (TypeError), the dedupe store's claim SET its key first (every delivery 503).  A
    stand-in of the class (a real one connects to its cluster when made)."""
    cluster = mock.create_autospec(RedisCluster, instance=True)
    with pytest.raises(ConfigurationError, match=r"redis\.asyncio\.RedisCluster"):
        kind(cluster)
    assert cluster.mock_calls == []  # refused before any command
