"""A worker of the many-process benchmarks is connected before GO.

``benchmarks.processes`` times a job from GO, sent to processes already started, and
leaves their start-up out.  Its workers entered the client and said READY without
touching Redis: each then connected, and loaded the pacing scripts, on its first
reservation, inside the timed job (75-180 ms per process with 14 woken at once on two
cores, against 1-9 ms once connected).  ``_connect`` does that before READY.
"""

from __future__ import annotations

import hashlib

from benchmarks.processes import _connect
from opentrain_async import OpenTrainClient
from opentrain_async._redis import scripts
from opentrain_async.testing import FakeOpenTrain

from .redis_server import RedisServer


async def test_a_worker_is_connected_and_its_scripts_loaded_before_go(
    server: FakeOpenTrain, redis_server: RedisServer
) -> None:
    shas = [
        hashlib.sha1(scripts.source("pacing_common", name).encode()).hexdigest()  # noqa: S324
        for name in ("pacing_reserve", "pacing_report")
    ]
    async with OpenTrainClient(
        server.token, server.base_url, pacing_url=redis_server.url
    ) as client:
        redis = client.pacer.backend.wrapped._redis
        assert await redis.script_exists(*shas) == [False, False]
        await _connect(client)
        assert await redis.script_exists(*shas) == [True, True]
        pool = redis.connection_pool
        assert pool._available_connections, "no connection to Redis was made before GO"
        assert client.pacer.backend.wrapped._connected
        assert server.stats()["requests"] == 0  # nothing sent: the limit's clock not started
