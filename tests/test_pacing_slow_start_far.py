"""Slow start far from the server: requests in flight follow Little's law.

A client 200 ms from a token bucket of 300/s (burst 10) needs 60 requests in flight.
Its slow-start window spreads each round trip's sends at the window's rate, so the
bucket sees a rate, not bunches of a whole window (which it refused at a fraction of
its rate), and the first 429 starts the search from what the server accepted in the
last round trip, not the average of the ramp (the search started at 55/s).  In
virtual time: the pacer's clock and sleeps are the loop's, nothing here waits.
"""

from __future__ import annotations

import asyncio
import random

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async.testing import LimitSchedule, TokenBucket
from opentrain_async.testing._limits import _ScheduleLimiter

RATE = 300.0
WORKERS = 64


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


def test_a_client_200_ms_away_starts_its_search_near_the_servers_rate() -> None:
    """The first 429 comes once the window's rate passes the bucket's, and the search
    starts from what the bucket accepted in the last round trip: at least 60% of its
    rate (before: 55/s, the ramp's average), with the 60 requests in flight the rate
    needs at 200 ms reached within the first second."""
    limit, most, heard_at = _run(0.2)
    assert limit is not None
    assert limit >= 0.6 * RATE
    assert most >= 0.8 * RATE * 0.2
    assert heard_at < 1.2


def test_a_client_100_ms_away_is_not_refused_for_bunching() -> None:
    """At 100 ms the window's sends went out as answers came back, a whole window at
    once, and a bucket with a burst of 10 refused them at 200/s (the search started
    at 73/s).  Spread over the round trip, the first 429 comes near the bucket's rate."""
    limit, _, _ = _run(0.1)
    assert limit is not None
    assert limit >= 0.6 * RATE


async def _slots_then_a_429() -> tuple[Pacer, list[float], float]:
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    first = [await pacer.acquire() for _ in range(4)]  # the initial window, at once
    await asyncio.sleep(0.2)
    for sent_at in first[:3]:
        pacer.on_success(sent_at)  # a round trip of 0.2 s measured
    waiting = [asyncio.ensure_future(pacer.acquire()) for _ in range(12)]
    await asyncio.sleep(0.01)  # they hold slots spread over the next round trip
    heard = loop.time()
    await pacer.on_throttle(first[3], 0.05)  # the fourth: a 429, paused 50 ms
    admitted = list(await asyncio.gather(*waiting))
    return pacer, admitted, heard


def test_sends_waiting_for_their_slots_are_paced_once_a_429_sets_the_pace() -> None:
    """A 429 heard while slow start's sends wait for their slots: those sends go at the
    pace it set, after its pause, not at their slots (unpaced, they met the limit just
    found), and each gives its room in the window back (none is counted twice)."""
    loop = VirtualTimeLoop()
    try:
        pacer, admitted, heard = loop.run_until_complete(_slots_then_a_429())
    finally:
        loop.close()
    assert pacer.state.limit is not None
    after = sorted(at for at in admitted if at > heard)
    assert len(after) >= 8
    assert after[0] >= heard + 0.05 - 1e-9  # nobody before the pause's end
    # At the pace, one at a time (unpaced, those woken by the pause's end went together).
    assert min(b - a for a, b in zip(after, after[1:])) > 0.005
    assert pacer.window.in_flight == 12  # the 12 admitted, each counted once
