"""An inline (``background=False``) webhook handler slower than the claim it holds.

OpenTrain stops waiting after 10 s and retries; while the first delivery is still being
handled each retry must get 409, whatever the handler's duration.  The claim was held
for ``PENDING_TTL`` (120 s) and not renewed, so a retry after that was handled again.
Now the claim is renewed every ``RENEW_INTERVAL`` while ``on_event`` runs, in both
stores, and a retry to the replica handling it is answered from what it knows; the
renewals stop with the handler, or with its process, and a dead one's claim lapses.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import (
    DedupeStore,
    Event,
    MemoryDedupeStore,
    RedisDedupeStore,
    WebhookHandler,
    sign_webhook_payload,
)
from opentrain_async._webhooks import PENDING_TTL, RENEW_INTERVAL

SECRET = "whsec_slow"
NOW = 1_781_000_000


def _delivery(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": "3001",
            "type": "message.received",
            "apiVersion": "v1",
            "createdAt": "2026-06-12T09:15:00.000Z",
            "data": {"conversationId": "conv_1", "messageId": "msg_3001"},
        }
    ).encode()
    headers = {
        "X-OpenTrain-Delivery": delivery,
        "X-OpenTrain-Signature": sign_webhook_payload(SECRET, body, timestamp=NOW),
        "Content-Type": "application/json",
    }
    return body, headers


async def test_a_retry_while_a_slow_inline_handler_runs_is_not_handled_again() -> None:
    now = [0.0]
    started: list[str] = []
    finish, entered, again = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def on_event(event: Event) -> None:
        started.append(event.id)
        (again if entered.is_set() else entered).set()
        await finish.wait()

    store = MemoryDedupeStore(clock=lambda: now[0])
    handler = WebhookHandler(SECRET, on_event, background=False, dedupe=store, clock=lambda: NOW)
    app = web.Application()
    handler.install(app, "/hooks")
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        body, headers = _delivery("dlv_1")
        first = asyncio.ensure_future(client.post("/hooks", data=body, headers=headers))
        await entered.wait()
        now[0] += PENDING_TTL + 1  # OpenTrain's retries keep coming while it runs
        body, headers = _delivery("dlv_1")
        retry = asyncio.ensure_future(client.post("/hooks", data=body, headers=headers))
        # Answered, or handed to on_event a second time (then it waits for `finish`).
        second = asyncio.ensure_future(again.wait())
        await asyncio.wait([retry, second], return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        finish.set()
        assert (await first).status == 200
        assert (await retry).status == 409
        assert started == ["3001"]
    finally:
        finish.set()
        await client.close()


STUCK = 10.0  # seconds: only reached when the renewer is missing or stuck
KEY = "opentrain_async:webhook:event:3001"  # RedisDedupeStore's default prefix + key


class Ticks:
    """The renewer's ``sleep``, stepped by the test: a step moves the stores' clock by
    the interval asked for and lets the renewer run once.  A replica whose ticks are no
    longer stepped is a dead one: its timers never fire again."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.asked: list[float] = []
        self._waiting: asyncio.Future[None] | None = None
        self._arrived = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self._waiting = asyncio.get_running_loop().create_future()
        self._arrived.set()
        await self._waiting

    @property
    def sleeping(self) -> bool:
        return self._waiting is not None and not self._waiting.done()

    async def step(self) -> None:
        """One interval passes; returns when the renewer has renewed and sleeps again.
        (The bound only turns a renewer that never sleeps into a failure, not a hang.)"""
        await asyncio.wait_for(self._arrived.wait(), STUCK)
        self._arrived.clear()
        assert self._waiting is not None
        self.now[0] += self.asked[-1]
        self._waiting.set_result(None)
        await asyncio.wait_for(self._arrived.wait(), STUCK)


class Replica:
    """One receiver (a ``WebhookHandler`` on a test server) of the shared store."""

    def __init__(self, store: DedupeStore, ticks: Ticks | None = None) -> None:
        self.started: list[str] = []
        self.entered = asyncio.Event()
        self.finish = asyncio.Event()
        self.fail = False
        self.handler = WebhookHandler(
            SECRET,
            self.on_event,
            background=False,
            dedupe=store,
            clock=lambda: NOW,
            sleep=(ticks or Ticks([0.0])).sleep,
        )
        self.client: TestClient[Any, Any] | None = None

    async def on_event(self, event: Event) -> None:
        self.started.append(event.id)
        self.entered.set()
        await self.finish.wait()
        if self.fail:
            raise RuntimeError("user code failed")

    async def __aenter__(self) -> Replica:
        app = web.Application()
        self.handler.install(app, "/hooks")
        self.client = TestClient(TestServer(app))
        await self.client.start_server()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.finish.set()
        assert self.client is not None
        await self.client.close()

    def post(self, delivery: str) -> asyncio.Future[Any]:
        assert self.client is not None
        body, headers = _delivery(delivery)
        return asyncio.ensure_future(self.client.post("/hooks", data=body, headers=headers))

    async def status(self, delivery: str) -> int:
        """A delivery that does not wait for on_event (it returns at once here)."""
        self.finish.set()
        return int((await self.post(delivery)).status)


async def test_a_claim_renewed_while_the_handler_runs_holds_off_every_replica() -> None:
    """Replica A handles the event for 300 s (2.5 claims); OpenTrain's retry then reaches
    replica B: 409 (was: handled again).  Once A is done the retry is a duplicate, and
    A's renewals have stopped."""
    now = [0.0]
    store, ticks = MemoryDedupeStore(clock=lambda: now[0]), Ticks(now)
    async with Replica(store, ticks) as a, Replica(store) as b:
        first = a.post("dlv_1")
        await a.entered.wait()
        for _ in range(13):
            await ticks.step()
        assert now[0] == 13 * RENEW_INTERVAL > 2 * PENDING_TTL
        assert set(ticks.asked) == {RENEW_INTERVAL}
        assert (await b.post("dlv_1")).status == 409
        a.finish.set()
        assert (await first).status == 200
        assert not ticks.sleeping
        assert await b.status("dlv_1") == 200
        assert a.started == ["3001"]
        assert b.started == []


async def test_a_dead_replicas_claim_lapses_and_the_retry_is_handled() -> None:
    """Replica A renews twice, then dies (its timers stop): its claim holds until
    PENDING_TTL after the last renewal, then OpenTrain's retry is handled by B."""
    now = [0.0]
    store, ticks = MemoryDedupeStore(clock=lambda: now[0]), Ticks(now)
    async with Replica(store, ticks) as a, Replica(store) as b:
        first = a.post("dlv_1")
        await a.entered.wait()
        await ticks.step()
        await ticks.step()
        now[0] += PENDING_TTL - 1  # A is dead: no renewal comes
        assert (await b.post("dlv_1")).status == 409
        now[0] += 2
        assert await b.status("dlv_1") == 200
        assert b.started == ["3001"]
        first.cancel()


async def test_a_failed_handler_stops_renewing_and_lets_the_retry_through() -> None:
    now = [0.0]
    store, ticks = MemoryDedupeStore(clock=lambda: now[0]), Ticks(now)
    async with Replica(store, ticks) as a:
        first = a.post("dlv_1")
        await a.entered.wait()
        await ticks.step()
        a.fail = True
        a.finish.set()
        assert (await first).status == 500
        assert not ticks.sleeping
        a.fail = False
        assert await a.status("dlv_1") == 200
        assert a.started == ["3001", "3001"]


async def test_redis_claims_are_renewed_and_a_dead_replicas_lapse(
    redis: redis_asyncio.Redis,
) -> None:
    """The same with Redis, which counts the claim on its own clock: the test moves the
    claim's expiry as the time passing would (PEXPIRE), and the renewal restores it."""
    ticks = Ticks([0.0])
    async with Replica(RedisDedupeStore(redis), ticks) as a, Replica(RedisDedupeStore(redis)) as b:
        first = a.post("dlv_1")
        await a.entered.wait()
        assert 0 < await redis.pttl(KEY) <= PENDING_TTL * 1000
        await redis.pexpire(KEY, 5_000)  # 115 s later
        await ticks.step()
        assert await redis.pttl(KEY) > (PENDING_TTL - 5) * 1000
        assert (await b.post("dlv_1")).status == 409
        # A dies: no renewal comes, and Redis's clock passes the claim's expiry.
        await redis.pexpireat(KEY, 1)
        assert await b.status("dlv_1") == 200
        assert b.started == ["3001"]
        a.finish.set()
        assert (await first).status == 200  # its settle finds the event handled
        assert await redis.get(KEY) == "done"


async def test_redis_store_renews_only_its_own_live_claim(redis: redis_asyncio.Redis) -> None:
    store = RedisDedupeStore(redis, prefix="t:")
    assert await store.claim("e1", "mine", PENDING_TTL) is None
    await redis.pexpire("t:e1", 1_000)
    assert await store.renew("e1", "theirs", PENDING_TTL) is False
    assert await redis.pttl("t:e1") <= 1_000
    assert await store.renew("e1", "mine", PENDING_TTL) is True
    assert await redis.pttl("t:e1") > (PENDING_TTL - 5) * 1000
    await store.settle("e1", "mine", 3600)
    assert await store.renew("e1", "mine", PENDING_TTL) is False
    assert await redis.get("t:e1") == "done"
    assert await redis.pttl("t:e1") > 3_500_000
    assert await store.claim("e2", "mine", PENDING_TTL) is None
    await redis.delete("t:e2")  # lapsed
    assert await store.renew("e2", "mine", PENDING_TTL) is False
    assert await redis.exists("t:e2") == 0  # not brought back


async def test_memory_store_renews_only_its_own_live_claim() -> None:
    now = [0.0]
    store = MemoryDedupeStore(clock=lambda: now[0])
    assert await store.claim("e1", "mine", PENDING_TTL) is None
    now[0] = 100
    assert await store.renew("e1", "theirs", PENDING_TTL) is False
    assert await store.renew("e1", "mine", PENDING_TTL) is True
    now[0] = 219
    assert await store.claim("e1", "theirs", PENDING_TTL) == "pending"
    now[0] = 221  # lapsed: not renewed, even though nobody took it since
    assert await store.renew("e1", "mine", PENDING_TTL) is False
    assert await store.claim("e1", "theirs", PENDING_TTL) is None
    await store.settle("e1", "theirs", 3600)
    assert await store.renew("e1", "theirs", PENDING_TTL) is False
    assert await store.claim("e1", "x", PENDING_TTL) == "done"


async def test_background_handlers_have_no_such_gap() -> None:
    """background=True remembers the event as handled before on_event runs: a retry
    long after PENDING_TTL, with on_event still running, is a duplicate (200)."""
    now = [0.0]
    finish, started = asyncio.Event(), []

    async def on_event(event: Event) -> None:
        started.append(event.id)
        await finish.wait()

    store = MemoryDedupeStore(clock=lambda: now[0])
    handler = WebhookHandler(SECRET, on_event, dedupe=store, clock=lambda: NOW)
    app = web.Application()
    handler.install(app, "/hooks")
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        body, headers = _delivery("dlv_1")
        assert (await client.post("/hooks", data=body, headers=headers)).status == 202
        now[0] += 10 * PENDING_TTL
        retry = await client.post("/hooks", data=body, headers=headers)
        assert (retry.status, await retry.json()) == (200, {"ok": True, "duplicate": True})
        assert started == ["3001"]
        assert handler.pending == 1
    finally:
        finish.set()
        await client.close()


def test_a_store_without_renew_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    class Plain:  # a store written before renew()
        async def claim(self, key: str, token: str, ttl: float) -> None:
            return None

        async def settle(self, key: str, token: str, ttl: float) -> None: ...

        async def release(self, key: str, token: str) -> None: ...

    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        WebhookHandler(SECRET, Replica.on_event, background=True, dedupe=Plain())
        assert not caplog.records
        WebhookHandler(SECRET, Replica.on_event, background=False, dedupe=Plain())
    assert "no renew()" in caplog.text
