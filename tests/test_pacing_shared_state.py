"""The shared pacing state in Redis, against a real redis-server: a corrupt hash is
not obeyed, and one process's ``rate_limit`` limits that process only.

A hash no pacer would write (``limit 1e-06``, a schedule an hour ahead) used to stop
every sender for good and keep its key alive; now each process sees it as unusable,
paces locally with a warning, and stops refreshing the key, so it expires and the
processes rejoin a fresh state.  A neighbour capped at 1/s used to push the shared
schedule a second per slot for everyone; now its cap is applied in that process.
"""

from __future__ import annotations

import asyncio
import logging
import time

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import OpenTrainClient
from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    encode_state,
)
from opentrain_async._pacing.shared_bounds import (
    UnusableSharedState,
    check_shared_state,
    longest_ahead,
)
from opentrain_async._pacing.state import PacingFeedback, PacingState, PacingTuning
from opentrain_async.testing import FakeOpenTrain

from .redis_server import RedisServer

KEY = "opentrain:pacing:{test}"


def backend(redis: redis_asyncio.Redis, **options: float) -> RedisPacingBackend:
    """One process's backend (a generous budget: these tests are about the state)."""
    return RedisPacingBackend(redis, key=KEY, options=RedisPacingOptions(budget=5, **options))


async def redis_now(redis: redis_asyncio.Redis) -> float:
    sec, usec = await redis.time()
    return float(sec) + usec / 1e6


async def learned(redis: redis_asyncio.Redis, key: str = KEY, **fields: float) -> float:
    """Write a state as pacers leave it after learning a limit of 200/s; returns now."""
    now = await redis_now(redis)
    state = PacingState(
        limit=200.0,
        searching=False,
        origin=now,
        recover=1.0,
        cut_at=now - 5,
        cuts=1,
        successes=100,
        tat=now,
    )
    values = {name: now + value for name, value in fields.items() if name != "limit"}
    if "limit" in fields:
        values["limit"] = fields["limit"]
    await redis.hset(key, mapping=encode_state(attrs.evolve(state, **values)))
    await redis.pexpire(key, 600_000)
    return now


def test_the_bounds_are_what_a_pacer_can_write() -> None:
    """The least learned limit, the slowest uncapped rate and the longest pause pass;
    anything beyond them (or not a number) is unusable."""
    tuning = PacingTuning()
    check_shared_state(tuning, 0.0, limit=0.5, rate=0.5 * tuning.beta, ahead=(60.0, 1.0))
    bound = longest_ahead(tuning)
    check_shared_state(tuning, 0.0, ahead=(bound,))
    for bad in (
        {"limit": 1e-06},
        {"limit": float("inf")},
        {"rate": 1e-06},
        {"ahead": (3600.0,)},
        {"ahead": (float("nan"),)},
    ):
        with pytest.raises(UnusableSharedState):
            check_shared_state(tuning, 0.0, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "corruption", [{"limit": 1e-06}, {"tat": 3600.0}, {"pause_until": 3600.0}], ids=str
)
async def test_a_corrupt_hash_is_paced_around_locally_with_a_warning(
    redis: redis_asyncio.Redis, caplog: pytest.LogCaptureFixture, corruption: dict[str, float]
) -> None:
    """HSET limit 1e-06, or a schedule or pause an hour ahead: the process paces
    locally at once (slots due now, not in an hour), saying why at WARNING."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    shared = backend(redis)
    await learned(redis, **corruption)
    slots = []
    for _ in range(3):
        got = await shared.reserve(4)
        slots.append(got)
        assert got.count >= 1
        assert got.first <= got.now + shared.tuning.horizon
    assert not shared.shared
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unusable" in warnings[0]
    assert "pacing locally" in warnings[0]
    await shared.aclose()


@pytest.mark.slow  # waits a second or more of real time
async def test_a_corrupt_key_is_not_kept_alive_and_the_processes_rejoin(
    redis: redis_asyncio.Redis,
) -> None:
    """Pacing locally around a corrupt key, the process never writes it again (no TTL
    refresh), so it expires; the next probe finds it gone and rejoins a valid state."""
    shared = backend(redis, ttl=1.0, retry_every=0.05)
    await learned(redis, limit=1e-06)
    await redis.pexpire(KEY, 1000)
    await shared.reserve(1)
    assert not shared.shared
    deadline = time.monotonic() + 15
    while await redis.exists(KEY):
        assert time.monotonic() < deadline, "the corrupt key was kept alive"
        assert (await shared.reserve(1)).count >= 1  # probes meanwhile: no write
        await asyncio.sleep(0.02)
    while not shared.shared:
        assert time.monotonic() < deadline, "did not rejoin after the key expired"
        await shared.reserve(1)
        await asyncio.sleep(0.02)
    await shared.reserve(1)
    state = await shared.load()
    assert state.limit is None or state.limit >= 0.5
    await shared.aclose()


async def test_a_capped_neighbour_does_not_move_the_shared_schedule(
    redis: redis_asyncio.Redis,
) -> None:
    """Process A capped at 1/s takes its slot; its next is a second away (its cap
    holds it).  Process B, uncapped, on the same key, gets slots due now: A's cap is
    not in the shared schedule."""
    a, b = backend(redis), backend(redis)
    await learned(redis)
    first = await a.reserve(1, cap=1.0)
    assert first.count == 1
    second = await a.reserve(1, cap=1.0)
    assert second.count == 0
    assert second.first - first.first == pytest.approx(1.0, abs=0.05)
    other = await b.reserve(5)
    assert other.count >= 1
    assert other.first <= other.now + b.tuning.horizon + b.tuning.tolerance
    assert other.rate is not None
    assert other.rate > 100
    await a.aclose()
    await b.aclose()


async def test_a_capped_processs_429_does_not_cut_the_shared_limit_to_its_cap(
    redis: redis_asyncio.Redis,
) -> None:
    """A 429 reported by a process capped at 1/s cuts the shared limit from the shared
    rate (about 200/s), not from its own 1/s."""
    a = backend(redis)
    now = await learned(redis)
    state = await a.report(
        PacingFeedback(throttled=True, throttled_at=now, local_rate=1.0), cap=1.0
    )
    assert state.cuts == 2
    assert state.limit is not None
    assert state.limit >= 50
    await a.aclose()


@pytest.mark.slow  # waits a second or more of real time
async def test_two_clients_a_neighbour_at_1_per_s_does_not_slow_the_other(
    server: FakeOpenTrain, redis_server: RedisServer, redis: redis_asyncio.Redis
) -> None:
    """Two clients on one Redis with a learned limit: A (rate_limit=1) sends two, B
    (no rate_limit) sends 20 right after A's first.  A's cap holds A (a second between
    its two); B's 20 are all in before A's second, not one per A's slot."""
    conv = server.add_conversation()
    url = redis_server.url + "?budget=5"
    a = OpenTrainClient(server.token, server.base_url, pacing_url=url, rate_limit=1)
    b = OpenTrainClient(server.token, server.base_url, pacing_url=url)
    async with a, b:
        assert isinstance(a.pacer.backend, RedisPacingBackend)
        assert a.pacer.backend.key is not None
        await learned(redis, a.pacer.backend.key)
        await a.send_message(conv, "a 0")
        second = asyncio.create_task(a.send_message(conv, "a 1"))
        report = await b.send_all([(conv, f"b {i}") for i in range(20)])
        await second
    assert report.sent == 20
    order = [r.json["content"] for r in server.sends if r.status == 201]
    assert order[0] == "a 0"
    assert order[-1] == "a 1", order
    times = {r.json["content"]: r.received_at for r in server.sends if r.status == 201}
    assert times["a 1"] - times["a 0"] >= 0.95  # A's own cap still holds A
    assert server.stats()["duplicates"] == 0


async def test_clients_sharing_one_backend_keep_their_own_caps(
    redis: redis_asyncio.Redis,
) -> None:
    """One backend given to two clients, at 1/s and at 1000/s: the slow one's next slot
    (a second away) does not hold the fast one back."""
    shared = backend(redis)
    await learned(redis)
    assert (await shared.reserve(1, cap=1.0)).count == 1
    assert (await shared.reserve(1, cap=1.0)).count == 0
    fast = await shared.reserve(1, cap=1000.0)
    assert fast.count == 1
    assert fast.first <= fast.now + shared.tuning.horizon + shared.tuning.tolerance
    await shared.aclose()
