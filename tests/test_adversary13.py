"""Adversary for issues 12 and 13: hostile hints, a misbehaving Redis, careless operators."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async._pacing import Pacer
from opentrain_async._pacing.backend import current_rate
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .redis_server import RedisServer


async def test_a_huge_hint_refused_by_max_retry_after_holds_nobody_back_longer(
    server: FakeOpenTrain,
) -> None:
    """A 429 whose hint is past ``max_retry_after`` fails at once (the user's cap); the
    pacer must not then hold every other request back for longer than that cap."""
    t = FakeTime()
    async with OpenTrainClient(
        server.token, server.base_url, clock=t.clock, sleep=t.sleep, max_retry_after=5
    ) as client:
        conv = server.add_conversation()
        await client.send_message(conv, "warm up")
        server.throttle_next(1, retry_after=1e9)
        with pytest.raises(RateLimitError):
            await client.send_message(conv, "hostile hint")
        before = t.slept
        await client.send_message(conv, "after")
        assert t.slept - before <= 5.0 * 1.2


async def test_a_huge_hint_does_not_slow_the_curve_for_good() -> None:
    """One 429 with a hint of 1e9 s (waited out only up to ``max_hint_pause``) must not
    be learned as a window that long: the curve climbs back to the limit afterwards."""
    t = FakeTime()
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    sent = await pacer.acquire()
    pacer.on_success(sent)
    await pacer.on_throttle(await pacer.acquire(), 0.5)  # first 429: the search starts
    t.advance(1.0)
    for _ in range(20):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), 1e9)  # a new episode: the cut
    state = pacer.state
    assert state.limit is not None
    later = current_rate(state, state.origin + 60.0, pacer.tuning)
    assert later is not None
    assert later >= 0.95 * state.limit


async def _probe_settled(backend: RedisPacingBackend) -> None:
    """Wait (deadline, no fixed sleep) for a background rejoin probe to finish."""
    deadline = time.monotonic() + 10
    while backend._probe is not None and not backend._probe.done():
        assert time.monotonic() < deadline, "probe did not finish"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("refusal", ["oom", "replica"])
async def test_a_redis_that_reads_but_refuses_writes_is_one_fallback(
    server: FakeOpenTrain,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
) -> None:
    """Redis full (``maxmemory`` + noeviction) or a read-only replica answers reads but
    refuses every write: that is one outage (one warning, one fallback), not a rejoin
    and a new outage each time a read-only probe gets an answer."""
    admin = redis_asyncio.Redis.from_url(redis_server.url)
    if refusal == "oom":
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", 1)
    else:
        await admin.config_set("replica-read-only", "yes")
        # A replica of a master nobody runs: it keeps serving reads, refuses writes.
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")
    t = FakeTime()
    caplog.set_level(logging.INFO, logger="opentrain_async")
    try:
        async with OpenTrainClient(
            server.token,
            server.base_url,
            clock=t.clock,
            sleep=t.sleep,
            pacing_url=redis_server.url + "?budget=5",
        ) as client:
            backend = client.pacer.backend
            assert isinstance(backend, RedisPacingBackend)
            conv = server.add_conversation()
            for i in range(6):
                await client.send_message(conv, f"m {i}")
                await _probe_settled(backend)
                t.advance(1.5)
            assert client.stats.pacing_fallbacks == 1
            assert not backend.shared
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert server.stats()["committed"] == 6
    finally:
        await admin.aclose()
