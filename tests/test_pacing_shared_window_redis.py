"""Processes on one real redis-server share a window's allowance: W in total per window.

Each "process" is a ``RedisPacingBackend`` with its own connection to one key (as
processes sending with one token share it); the scripts are the ones every process
runs.  The state is seeded with a window already known (W, and a pause that ends at a
reset), so these tests are about sharing the allowance, not about finding the window.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import Pacer
from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    encode_state,
)
from opentrain_async._pacing.state import PacingFeedback
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import known_window
from .redis_server import RedisServer

W = 20
PROCESSES = 3


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[redis_asyncio.Redis]]:
    made = [
        redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
        for _ in range(PROCESSES)
    ]
    yield made
    for client in made:
        await client.aclose()


async def _seed(redis: redis_asyncio.Redis, key: str, window: float, ahead: float) -> None:
    """A window of W per ``window`` seconds, known; its next reset ``ahead`` from now."""
    sec, usec = await redis.time()
    reset = float(sec) + usec / 1e6 + ahead
    await redis.hset(key, mapping=encode_state(known_window(W, window, reset)))


def _backends(clients: list[redis_asyncio.Redis], key: str) -> list[RedisPacingBackend]:
    # A budget no loaded CI machine exceeds: a fallback would make the processes separate.
    return [
        RedisPacingBackend(client, key=key, options=RedisPacingOptions(budget=5))
        for client in clients
    ]


async def test_processes_share_w_then_one_probe(clients: list[redis_asyncio.Redis]) -> None:
    """Every process asks for more than W at the reset: W go in total; once all are
    answered one process gets the probe, the others nothing; its 429 pauses them all."""
    await _seed(clients[0], "shared-w", 4.0, ahead=-0.01)  # the reset just passed
    backends = _backends(clients, "shared-w")
    got = await asyncio.gather(*(b.reserve(W) for b in backends))
    assert sum(r.count for r in got) == W
    assert all(r.interval == 0 for r in got)  # all at once, not spread over the window
    answered = await asyncio.gather(
        *(b.report(PacingFeedback(successes=r.count)) for b, r in zip(backends, got, strict=True))
    )
    assert max(s.successes for s in answered) == 2 * W
    probes = await asyncio.gather(*(b.reserve(W) for b in backends))
    assert sorted(r.count for r in probes) == [0] * (PROCESSES - 1) + [1]
    prober = next(b for b, r in zip(backends, probes, strict=True) if r.count)
    refused = await prober.report(
        PacingFeedback(throttled=True, throttled_at=max(r.first for r in probes), retry_after=3.25)
    )
    after = await asyncio.gather(*(b.reserve(W) for b in backends))
    assert all(r.count == 0 and r.first == refused.pause_until for r in after)
    assert refused.win_reset == refused.pause_until  # the pause ends at the next reset


async def test_pacers_on_one_redis_send_each_window_once(
    clients: list[redis_asyncio.Redis],
) -> None:
    """Pacers in three "processes" (eight requests in flight each) send 3 W messages
    through a fixed window of W per second with exact hints: every message is delivered
    once, no window sees more than W sends plus the probe, and the 429s are one per
    window (the probe), not one per process."""
    window = 1.0
    await _seed(clients[0], "shared-run", window, ahead=0.05)
    pacers = [Pacer(backend=b) for b in _backends(clients, "shared-run")]
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=W, window=window)),)))
    start: list[float] = []
    attempts: Counter[int] = Counter()
    delivered: list[int] = []
    messages = list(range(3 * W))

    async def worker(pacer: Pacer) -> None:
        while messages:
            message = messages.pop()
            while True:
                fast = pacer.try_acquire()
                sent_at = fast if fast is not None else await pacer.acquire()
                now = time.monotonic()
                start[:] = start or [now]
                attempts[math.floor((now - start[0]) / window)] += 1
                wait = limiter.acquire(now)
                if wait is None:
                    pacer.on_success(sent_at)
                    delivered.append(message)
                    break
                await pacer.on_throttle(sent_at, wait)

    await asyncio.wait_for(
        asyncio.gather(*(worker(p) for p in pacers for _ in range(8))), timeout=30
    )
    assert sorted(delivered) == list(range(3 * W))
    assert max(attempts.values()) <= W + 1
    assert sum(attempts.values()) - 3 * W <= len(attempts)
