"""Slow start far from the server: what the first 429 teaches (still wrong, xfail).

A client 200 ms from a token bucket of 300/s (burst 10) needs 60 requests in flight.
Its slow-start window sends a window's worth at once as answers come back, so the
bucket refuses bunches at a fraction of its rate, and the first 429 starts the search
at the ramp's average (53/s at 200 ms, 88/s at 100 ms).  A fix (slow start's sends
spread over the round trip, the first estimate by Little's law) passed these and was
not kept: the family's p90 got worse on report seeds
(benchmarks/pacing-experiments.md, "Little's law in slow start").  In virtual time: the
pacer's clock and sleeps are the loop's.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async.testing import LimitSchedule, TokenBucket
from opentrain_async.testing._limits import _ScheduleLimiter

RATE = 300.0
WORKERS = 64
_NOT_YET = pytest.mark.xfail(
    strict=True,
    reason="pacing: slow start sends a window at once and the first 429 starts the search "
    "at the ramp's average (53-88/s against 300/s at 100-200 ms); the fix tried on branch "
    "littles made the family's p90 worse on report seeds (benchmarks/pacing-experiments.md)",
)


async def _first_contact(latency: float) -> tuple[float | None, int, float]:
    """(the limit the first 429 taught, the most requests in flight before its answer,
    when that answer came), for WORKERS senders ``latency`` from the bucket."""
    loop = asyncio.get_running_loop()
    rng = random.Random(7)
    start = loop.time()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, TokenBucket(rate=RATE, burst=10)),)))
    flying = 0
    most = 0
    heard = asyncio.Event()
    heard_at = 0.0

    async def worker() -> None:
        nonlocal flying, most, heard_at
        while not heard.is_set():
            sent_at = pacer.try_acquire()
            if sent_at is None:
                sent_at = await pacer.acquire()
            flying += 1
            most = max(most, flying)
            half = latency / 2 * (1 + 0.1 * rng.uniform(-1, 1))
            await asyncio.sleep(half)
            wait = limiter.acquire(loop.time() - start)
            await asyncio.sleep(half)
            flying -= 1
            if wait is None:
                pacer.on_success(sent_at)
                continue
            if not heard.is_set():
                heard_at = loop.time() - start
                heard.set()
                await pacer.on_throttle(sent_at, wait)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return pacer.state.limit, most, heard_at


def _run(latency: float) -> tuple[float | None, int, float]:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_first_contact(latency))
    finally:
        loop.close()


@_NOT_YET
def test_a_client_200_ms_away_starts_its_search_near_the_servers_rate() -> None:
    """The first 429 comes once the window's rate passes the bucket's, and the search
    starts from what the bucket accepted in the last round trip: at least 60% of its
    rate (today: 53/s, the ramp's average), with the 60 requests in flight the rate
    needs at 200 ms reached within the first second."""
    limit, most, heard_at = _run(0.2)
    assert limit is not None
    assert limit >= 0.6 * RATE
    assert most >= 0.8 * RATE * 0.2
    assert heard_at < 1.2


@_NOT_YET
def test_a_client_100_ms_away_is_not_refused_for_bunching() -> None:
    """At 100 ms the window's sends went out as answers came back, a whole window at
    once, and a bucket with a burst of 10 refused them at 200/s (the search started
    at 73/s).  Spread over the round trip, the first 429 comes near the bucket's rate."""
    limit, _, _ = _run(0.1)
    assert limit is not None
    assert limit >= 0.6 * RATE
