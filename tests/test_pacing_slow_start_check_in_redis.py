"""A request the full slow-start window held learns another process's 429 through Redis.

``tests/test_pacing_slow_start_check_in.py`` on a real ``redis-server``: two processes'
backends on one hash, the waiting pacer's own clock injected (the state keeps Redis
``TIME``), so "a check-in is due" needs no real wait.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis_asyncio

from opentrain_async import Pacer
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async._pacing.redis_options import RedisPacingOptions
from opentrain_async.testing import FakeTime

KEY = "opentrain:pacing:{slow-start-check-in}"


def _backend(redis: redis_asyncio.Redis) -> RedisPacingBackend:
    return RedisPacingBackend(redis, key=KEY, options=RedisPacingOptions(budget=5))


async def test_a_request_let_in_by_the_window_waits_out_another_process_429(
    redis: redis_asyncio.Redis,
) -> None:
    """The other process's exact hint paused the hash while this one's second request
    waited for room: let in past a due check-in, it reads the pause and waits it out."""
    await redis.delete(KEY)
    time = FakeTime(start=100.0)
    mine, theirs = _backend(redis), _backend(redis)
    waiting = Pacer(backend=mine, clock=time.clock, sleep=time.sleep)
    other = Pacer(backend=theirs)
    held = await waiting.acquire()  # checked in: nothing known yet, one request in flight
    second = asyncio.ensure_future(waiting.acquire())  # no check-in due: waits for room
    for _ in range(5):
        await asyncio.sleep(0)
    assert not second.done()
    sent = await other.acquire()
    await other.on_throttle(sent, 0.5)  # an exact hint: every process pauses 0.5 s
    pause_until = (await theirs.load()).pause_until
    time.advance(0.01)  # past this process's next check-in
    waiting.on_success(held)  # the window lets the second request in
    started = await asyncio.wait_for(second, 5)
    assert started >= pause_until
    await mine.aclose()
    await theirs.aclose()
