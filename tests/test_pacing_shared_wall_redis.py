"""Processes on one real redis-server share a shut limiter's probe: one for all.

Each "process" is a ``RedisPacingBackend`` with its own connection to one key (as
processes sending with one token share it).  A limiter that answers 429 with no hint
is found shut by one pacer (``WallProbe``: a request admitted after the guessed pause
refused too); from then on the state grants one probe at a time for every process
(``wall``), not one each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import Pacer
from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    encode_state,
)
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .redis_server import RedisServer

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


def _backends(clients: list[redis_asyncio.Redis], key: str) -> list[RedisPacingBackend]:
    # A budget no loaded CI machine exceeds: a fallback would make the processes separate.
    return [
        RedisPacingBackend(client, key=key, options=RedisPacingOptions(budget=5))
        for client in clients
    ]


async def test_one_probe_for_all_until_one_is_accepted(
    clients: list[redis_asyncio.Redis],
) -> None:
    """One process reports the wall; every process then asks for slots: one gets the
    probe, the others nothing; its 429 holds them all to its pause; a success
    reported since it went lifts the wall, and the schedule hands out slots again."""
    sec, usec = await clients[0].time()
    now = float(sec) + usec / 1e6
    state = PacingState(limit=50.0, searching=False, origin=now - 1, cuts=2, successes=40)
    await clients[0].hset("wall", mapping=encode_state(state))
    backends = _backends(clients, "wall")
    shut = await backends[0].report(
        PacingFeedback(throttled=True, throttled_at=now, wall=float("-inf"))
    )
    assert shut.wall_shut
    assert shut.pause_until > now
    await asyncio.sleep(shut.pause_until - now)
    probes = await asyncio.gather(*(b.reserve(10) for b in backends))
    assert sorted(r.count for r in probes) == [0] * (PROCESSES - 1) + [1]
    prober = next(i for i, r in enumerate(probes) if r.count)
    sent_at = probes[prober].first
    refused = await backends[prober].report(PacingFeedback(throttled=True, throttled_at=sent_at))
    assert refused.wall_shut
    assert refused.pause_until > sent_at
    held = await asyncio.gather(*(b.reserve(10) for b in backends))
    horizon = backends[0].tuning.horizon
    assert sum(r.count for r in held) <= 1  # (one, if this machine stalled past the pause)
    assert all(r.first >= refused.pause_until - horizon for r in held)  # none before its end
    if not any(r.count for r in held):
        await asyncio.sleep(refused.pause_until - sent_at)
        held = await asyncio.gather(*(b.reserve(10) for b in backends))
        assert sorted(r.count for r in held) == [0] * (PROCESSES - 1) + [1]
    prober = next(i for i, r in enumerate(held) if r.count)
    await backends[prober].report(PacingFeedback(successes=1))
    lifted = await backends[(prober + 1) % PROCESSES].reserve(10)
    assert lifted.count >= 1
    assert lifted.interval > 0
    assert not (await backends[0].load()).wall_shut


class _Granting(RedisPacingBackend):
    """A process's backend that notes each probe the shared state grants (one slot,
    interval 0, outside a window's mode: ``wall.reserve_wall``)."""

    probes_granted: list[float]

    async def reserve(self, count: int, *, successes: int = 0, cap: float | None = None) -> Any:
        reservation = await super().reserve(count, successes=successes, cap=cap)
        if reservation.count and not reservation.interval and reservation.rate is not None:
            self.probes_granted.append(reservation.first)
        return reservation


async def test_pacers_on_one_redis_probe_a_hintless_window_once_for_all(
    clients: list[redis_asyncio.Redis],
) -> None:
    """Pacers in three "processes" (four requests in flight each, 10 ms round trips)
    send 60 messages through a fixed window of 30 per 1.2 s that answers 429 with no
    hint: every message is delivered once; the wall is probed, never by two at once
    (no probe is granted while another's answer is on its way); the 429s are the
    requests in flight when each window filled and the probes, not a probe per
    process per pause."""
    granted: list[float] = []
    backends = []
    for client in clients:
        backend = _Granting(client, key="wall-run", options=RedisPacingOptions(budget=5))
        backend.probes_granted = granted
        backends.append(backend)
    pacers = [Pacer(backend=b) for b in backends]
    limiter = _ScheduleLimiter(
        LimitSchedule(((0.0, FixedWindow(limit=30, window=1.2)),), hints="none")
    )
    delivered: list[int] = []
    refused: list[float] = []
    messages = list(range(60))
    probes_out: list[float] = []
    overlapping: list[float] = []

    async def send(pacer: Pacer, message: int) -> None:
        while True:
            fast = pacer.try_acquire()
            sent_at = fast if fast is not None else await pacer.acquire()
            probe = any(abs(sent_at - g) < 1e-6 for g in granted)
            if probe:
                if probes_out:
                    overlapping.append(sent_at)
                probes_out.append(sent_at)
            accepted = limiter.acquire(time.monotonic()) is None
            await asyncio.sleep(0.01)  # the round trip
            if probe:
                probes_out.remove(sent_at)
            if accepted:
                pacer.on_success(sent_at)
                delivered.append(message)
                return
            refused.append(sent_at)
            await pacer.on_throttle(sent_at, None)

    async def worker(pacer: Pacer) -> None:
        while messages:
            await send(pacer, messages.pop())

    await asyncio.wait_for(
        asyncio.gather(*(worker(p) for p in pacers for _ in range(4))), timeout=30
    )
    for pacer in pacers:
        await pacer.flushed()
    print(len(refused), len(granted))
    assert sorted(delivered) == list(range(60))
    assert granted
    assert not overlapping
