"""Clients sharing one real redis-server against the fake OpenTrain server (loopback):
one limit for all, pauses for all, skewed clocks, and Redis dying under a running job."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .redis_server import RedisServer
from .waiting import until

Items = list[tuple[str, str]]


def steady(server: RedisServer) -> str:
    """The server's URL with a budget no loaded CI machine exceeds: for tests about
    sharing, not about a slow Redis (a fallback would make the processes separate)."""
    return server.url + "?budget=5"


def items_for(server: FakeOpenTrain, label: str, n: int) -> Items:
    convs = [server.add_conversation() for _ in range(4)]
    return [(convs[i % 4], f"{label} {i}") for i in range(n)]


def assert_exactly_once(server: FakeOpenTrain, n: int) -> None:
    stats = server.stats()
    assert stats["committed"] == stats["distinct"] == n
    assert stats["duplicates"] == 0


async def send_until_rejoined(client: OpenTrainClient, server: FakeOpenTrain) -> int:
    """Keep sending (so the pacer keeps asking its backend) until it is shared again;
    returns how many were sent."""
    backend = client.pacer.backend
    assert isinstance(backend, RedisPacingBackend)
    conv = server.add_conversation()
    deadline = time.monotonic() + 10
    sent = 0
    while not backend.shared:
        assert time.monotonic() < deadline, "did not rejoin"
        await client.send_message(conv, f"rejoin {sent}")
        sent += 1
    return sent


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "shared pacing" in r.getMessage()
    ]


async def send_together(server: FakeOpenTrain, n: int, **options: Any) -> list[int]:
    """Two clients (as two processes) each send n messages at once; returns sent counts."""

    async def one(label: str) -> int:
        async with OpenTrainClient(
            server.token, server.base_url, max_concurrency=16, **options
        ) as client:
            report = await client.send_all(items_for(server, label, n))
            return report.sent

    return list(await asyncio.gather(one("a"), one("b")))


async def test_each_clients_stated_limit_is_its_own(
    server: FakeOpenTrain, redis_server: RedisServer
) -> None:
    """A rate_limit limits its own process, not the shared schedule: two clients on one
    Redis, each told half (a little under) the server's limit, send together with no
    429 at all, and each at its own cap."""
    server.set_rate_limit(TokenBucket(rate=100, burst=5))
    assert await send_together(server, 30, rate_limit=45, pacing_url=steady(redis_server)) == [
        30,
        30,
    ]
    assert server.stats()["rate_limited"] == 0
    assert_exactly_once(server, 60)


@pytest.mark.slow  # waits a second or more of real time
async def test_two_clients_learn_one_limit(
    server: FakeOpenTrain, redis_server: RedisServer
) -> None:
    """Not told the limit, two clients learn it together: all delivered once, few 429s,
    and the learned state is one (the same cuts in Redis for both)."""
    # 100/s: well under what two clients send even on a loaded machine, so 429s come.
    server.set_rate_limit(TokenBucket(rate=100, burst=5))
    assert await send_together(server, 150, pacing_url=steady(redis_server)) == [150, 150]
    assert_exactly_once(server, 300)
    # How few 429s is pacing quality, measured by `benchmarks.processes`, not here: a
    # loaded CI machine draws more (77 seen in a full suite beside other jobs).  What this
    # test holds is that the two learn ONE state: every 429 either drew is in Redis.
    assert server.stats()["rate_limited"] < 150
    r = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        (key,) = await r.keys("opentrain:pacing:*")
        state = await r.hgetall(key)
    finally:
        await r.aclose()
    assert float(state["limit"]) > 0
    # One state for both: every 429 either drew is counted in it (each report is one
    # script; it was an optimistic transaction that, contended, could give up and
    # count one locally: 90 of 91 seen under a loaded full suite).
    assert int(state["throttles"]) == server.stats()["rate_limited"]


async def test_exact_hint_pauses_the_other_client(
    server: FakeOpenTrain, redis_server: RedisServer
) -> None:
    """A 429 with an exact 0.5 s hint to one client holds the other client back too."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=0.5)
    a = OpenTrainClient(server.token, server.base_url, pacing_url=steady(redis_server))
    b = OpenTrainClient(server.token, server.base_url, pacing_url=steady(redis_server))
    async with a, b:
        first = asyncio.create_task(a.send_message(conv, "from a"))
        await until(lambda: a.pacer.state.throttles == 1, "the 429 to be counted")
        await b.send_message(conv, "from b")
        await first
    throttled = next(r for r in server.sends if r.status == 429)
    from_b = next(r for r in server.sends if r.json["content"] == "from b")
    assert from_b.received_at - throttled.received_at >= 0.45


@pytest.mark.parametrize("offsets", [(1e6, -5e4), (0.0, 3600.0)])
async def test_clock_skew_between_clients_does_not_matter(
    server: FakeOpenTrain, redis_server: RedisServer, offsets: tuple[float, float]
) -> None:
    """Two clients whose clocks disagree by hours or days share one schedule (Redis
    TIME): each at its own stated limit (half the server's), no 429."""
    server.set_rate_limit(TokenBucket(rate=100, burst=5))

    async def one(label: str, offset: float) -> int:
        async with OpenTrainClient(
            server.token,
            server.base_url,
            max_concurrency=16,
            rate_limit=45,
            pacing_url=steady(redis_server),
            clock=lambda: time.monotonic() + offset,
            sleep=asyncio.sleep,  # a shifted real clock: real waits go with it
        ) as client:
            return (await client.send_all(items_for(server, label, 30))).sent

    assert await asyncio.gather(one("a", offsets[0]), one("b", offsets[1])) == [30, 30]
    assert server.stats()["rate_limited"] == 0


@pytest.mark.process
async def test_redis_down_at_start_then_back(
    server: FakeOpenTrain, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No Redis at start: the client sends on local pacing (one warning, one counted
    fallback), and rejoins once Redis answers."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    redis_server.kill()
    items = items_for(server, "down", 40)
    async with OpenTrainClient(
        server.token, server.base_url, pacing_url=redis_server.url + "?retry_every=0.05"
    ) as client:
        backend = client.pacer.backend
        assert isinstance(backend, RedisPacingBackend)
        assert (await client.send_all(items[:20])).sent == 20
        assert not backend.shared
        redis_server.start()
        extra = await send_until_rejoined(client, server)
        assert (await client.send_all(items[20:])).sent == 20
        assert client.stats.pacing_fallbacks == 1
    assert_exactly_once(server, 40 + extra)
    assert len(warnings_of(caplog)) == 1
    assert any("rejoined" in r.getMessage() for r in caplog.records)


@pytest.mark.process
async def test_redis_killed_mid_run_and_back_delivers_exactly_once(
    server: FakeOpenTrain, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of Redis a fifth into a learned-limit job, restarted at three fifths:
    every message delivered exactly once, one warning, and the client rejoins."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    server.set_rate_limit(TokenBucket(rate=400, burst=10))
    items = items_for(server, "kill", 300)
    seen = 0

    def on_outcome(outcome: SendOutcome) -> None:
        nonlocal seen
        seen += 1
        if seen == 60:
            redis_server.kill()
        elif seen == 180:
            redis_server.start()

    async with OpenTrainClient(
        server.token,
        server.base_url,
        max_concurrency=16,
        pacing_url=redis_server.url + "?retry_every=0.05&budget=1",
    ) as client:
        report = await client.send_all(items, on_outcome=on_outcome)
        assert report.sent == 300
        assert client.stats.pacing_fallbacks == 1
        backend = client.pacer.backend
        assert isinstance(backend, RedisPacingBackend)
        await send_until_rejoined(client, server)
    stats = server.stats()
    assert stats["committed"] == stats["distinct"]
    assert stats["duplicates"] == 0
    assert all(any(m["content"] == c for m in server.messages(conv)) for conv, c in items)
    assert len(warnings_of(caplog)) == 1


@pytest.mark.process
async def test_redis_slower_than_budget_fails_open(
    server: FakeOpenTrain, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that stops answering (SIGSTOP) counts as down after the budget: sends go
    on locally; after SIGCONT the client rejoins."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    items = items_for(server, "stop", 40)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    async with OpenTrainClient(
        server.token,
        server.base_url,
        rate_limit=500,  # paced: the backend is asked for every batch of slots
        # the default budget: 50 ms was missed again after the rejoin on a loaded machine
        pacing_url=redis_server.url + "?budget=0.25&retry_every=0.05",
    ) as client:
        backend = client.pacer.backend
        assert isinstance(backend, RedisPacingBackend)
        assert (await client.send_all(items[:10])).sent == 10
        assert backend.shared
        os.kill(pid, signal.SIGSTOP)
        try:
            assert (await client.send_all(items[10:40])).sent == 30
            assert not backend.shared
        finally:
            os.kill(pid, signal.SIGCONT)
        extra = await send_until_rejoined(client, server)
        assert client.stats.pacing_fallbacks == 1
    assert_exactly_once(server, 40 + extra)
    assert len(warnings_of(caplog)) == 1
    assert "TimeoutError" in warnings_of(caplog)[0]


@pytest.mark.process
async def test_fail_closed_waits_for_redis(
    server: FakeOpenTrain, redis_server: RedisServer
) -> None:
    """With fail_closed, a send waits (retrying) while Redis is down and goes once it
    is back: nothing reaches the server meanwhile."""
    conv = server.add_conversation()
    redis_server.kill()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(min(seconds, 0.01))

    async with OpenTrainClient(
        server.token,
        server.base_url,
        pacing_url=redis_server.url + "?retry_every=0.05",
        pacing_fail_closed=True,
        clock=time.monotonic,  # the sleep really waits (if briefly): real time
        sleep=sleep,
    ) as client:
        task = asyncio.create_task(client.send_message(conv, "closed"))
        await until(lambda: len(waits) >= 3, "three retries while Redis is down")
        assert server.sends == []
        assert client.stats.pacing_fallbacks == 1
        redis_server.start()
        message = await task
    assert message.content == "closed"
    assert len(server.sends) == 1
    assert waits[:3] == [0.05, 0.05, 0.05]


async def test_a_redis_client_of_ones_own(server: FakeOpenTrain, redis_server: RedisServer) -> None:
    """pacing_backend=RedisPacingBackend(redis) paces on it under the client's key, and
    closing the OpenTrainClient leaves the caller's Redis client open."""
    r = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        backend = RedisPacingBackend(r)
        async with OpenTrainClient(server.token, server.base_url, pacing_backend=backend) as client:
            assert (await client.send_all(items_for(server, "own", 5))).sent == 5
        assert backend.key is not None
        assert await r.exists(backend.key) == 1
        assert await r.ping()
    finally:
        await r.aclose()
