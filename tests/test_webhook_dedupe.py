"""Webhook dedupe: on the signed event id, through a store that replicas can share."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import (
    ConfigurationError,
    Event,
    MemoryDedupeStore,
    RedisDedupeStore,
    WebhookHandler,
    sign_webhook_payload,
)

from .redis_server import RedisServer

SECRET = "whsec_dedupe"
NOW = 1_781_000_000
ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0


def _body(event_id: str = "2001") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "type": "message.received",
            "apiVersion": "v1",
            "createdAt": "2026-06-12T09:15:00.000Z",
            "data": {"conversationId": "conv_1", "messageId": f"msg_{event_id}"},
        }
    ).encode()


def _headers(body: bytes, delivery: str, *, timestamp: int = NOW) -> dict[str, str]:
    return {
        "X-OpenTrain-Event": "message.received",
        "X-OpenTrain-Delivery": delivery,
        "X-OpenTrain-Signature": sign_webhook_payload(SECRET, body, timestamp=timestamp),
        "Content-Type": "application/json",
    }


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _serve(handler: WebhookHandler) -> TestClient[Any, Any]:
    app = web.Application()
    handler.install(app, "/hooks")
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize("background", [True, False])
async def test_a_replay_under_other_delivery_ids_is_handled_once(background: bool) -> None:
    """One signed delivery replayed with 4 different X-OpenTrain-Delivery values (not
    signed, so anyone can change it): on_event runs once (was: 4 times)."""
    seen: list[str] = []

    async def on_event(event: Event) -> None:
        seen.append(event.id)

    handler = WebhookHandler(SECRET, on_event, background=background, clock=lambda: NOW)
    client = await _serve(handler)
    try:
        body = _body()
        statuses = [
            (await client.post("/hooks", data=body, headers=_headers(body, f"dlv_{n}"))).status
            for n in range(4)
        ]
        # Re-signed later with another timestamp: still the same signed event id.
        later = _headers(body, "dlv_late", timestamp=NOW - 60)
        statuses.append((await client.post("/hooks", data=body, headers=later)).status)
    finally:
        await client.close()  # drains background handlers
    assert seen == ["2001"]
    assert statuses == [202 if background else 200] + [200] * 4
    assert (handler.received, handler.duplicates) == (1, 4)


async def test_a_failing_store_answers_503_and_handles_nothing() -> None:
    """The store cannot say whether the event was handled: 503 (OpenTrain retries), not
    a guess either way."""

    class Down(MemoryDedupeStore):
        async def claim(self, key: str, token: str, ttl: float) -> None:
            raise ConnectionError("store down")

    seen: list[Event] = []

    async def on_event(event: Event) -> None:
        seen.append(event)

    client = await _serve(WebhookHandler(SECRET, on_event, dedupe=Down(), clock=lambda: NOW))
    try:
        body = _body()
        response = await client.post("/hooks", data=body, headers=_headers(body, "d"))
        assert response.status == 503
        assert (await response.json())["error"] == "dedupe_unavailable"
    finally:
        await client.close()
    assert seen == []


def test_bad_dedupe_options_are_configuration_errors() -> None:
    """A store that is not one, or a TTL that is not seconds, is refused up front."""

    async def noop(_: Event) -> None:
        return None

    with pytest.raises(ConfigurationError, match="DedupeStore"):
        WebhookHandler(SECRET, noop, dedupe=object())  # type: ignore[arg-type]
    for ttl in (0, -1, float("nan"), True):
        with pytest.raises(ConfigurationError, match="ttl"):
            WebhookHandler(SECRET, noop, dedupe_ttl=ttl)
    with pytest.raises(ConfigurationError, match="capacity"):
        MemoryDedupeStore(0)


async def test_memory_store_forgets_after_the_ttl() -> None:
    """A key is held until its TTL on the store's clock, then free again."""
    now = [0.0]
    store = MemoryDedupeStore(clock=lambda: now[0])
    assert await store.claim("k", "a", 10) is None
    assert await store.claim("k", "b", 10) == "pending"
    await store.release("k", "b")  # not b's: kept
    assert await store.claim("k", "b", 10) == "pending"
    await store.settle("k", "a", 10)
    now[0] = 9.9
    assert await store.claim("k", "b", 10) == "done"
    now[0] = 10.1
    assert await store.claim("k", "b", 10) is None


async def test_redis_store_claims_once_with_a_ttl(redis: redis_asyncio.Redis) -> None:
    """One claim wins; settled keys expire by Redis's TTL; release frees only its own."""
    store = RedisDedupeStore(redis, prefix="t:")
    results = await asyncio.gather(*(store.claim("e1", f"tok{n}", 60) for n in range(20)))
    assert results.count(None) == 1
    assert set(results) == {None, "pending"}
    winner = f"tok{results.index(None)}"
    await store.release("e1", "someone_else")
    assert await store.claim("e1", "late", 60) == "pending"
    await store.release("e1", winner)
    assert await store.claim("e1", "again", 60) is None
    await store.settle("e1", "again", 3600)
    assert await store.claim("e1", "x", 60) == "done"
    assert 3_500_000 < await redis.pttl("t:e1") <= 3_600_000
    assert "redis" not in repr(store).lower().replace("redisdedupestore", "")


async def test_inline_failure_with_redis_lets_the_retry_through(
    redis: redis_asyncio.Redis,
) -> None:
    """on_event raised: the claim is released, so OpenTrain's retry is handled."""
    calls: list[str] = []

    async def flaky(event: Event) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("user code failed")

    handler = WebhookHandler(
        SECRET, flaky, background=False, dedupe=RedisDedupeStore(redis), clock=lambda: NOW
    )
    client = await _serve(handler)
    try:
        body = _body()
        first = await client.post("/hooks", data=body, headers=_headers(body, "d1"))
        retry = await client.post("/hooks", data=body, headers=_headers(body, "d1"))
        again = await client.post("/hooks", data=body, headers=_headers(body, "d2"))
    finally:
        await client.close()
    assert (first.status, retry.status, again.status) == (500, 200, 200)
    assert calls == ["2001", "2001"]


class Receiver:
    """One ``tests/webhook_receiver.py`` process."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}/hooks"

    @classmethod
    async def start(cls, redis_url: str) -> Receiver:
        env = {
            **os.environ,
            "RECEIVER_REDIS_URL": redis_url,
            "RECEIVER_SECRET": SECRET,
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.webhook_receiver",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode().split()
        assert line[:1] == ["listening"], line
        return cls(process, int(line[1]))

    async def stop(self) -> list[str]:
        """SIGTERM, then the event ids it printed as handled."""
        self.process.terminate()
        assert self.process.stdout is not None
        out = await asyncio.wait_for(self.process.stdout.read(), WAIT)
        await asyncio.wait_for(self.process.wait(), WAIT)
        return [line.split()[1] for line in out.decode().splitlines() if line.startswith("handled")]


@pytest.mark.process
async def test_two_receiver_processes_sharing_redis_handle_a_delivery_once(
    redis_server: RedisServer,
) -> None:
    """The same delivery reaches two replicas at once (a retry after a load balancer's
    timeout), then again under new delivery ids: handled once in all.  Was: a
    per-process set, so each replica handled it."""
    receivers = await asyncio.gather(*(Receiver.start(redis_server.url) for _ in range(2)))
    handled: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def post(url: str, body: bytes, delivery: str) -> int:
                headers = _headers(body, delivery, timestamp=0)
                headers["X-OpenTrain-Signature"] = sign_webhook_payload(SECRET, body)
                async with http.post(url, data=body, headers=headers) as response:
                    return response.status

            for n in range(10):
                body = _body(f"30{n:02d}")
                at_once = await asyncio.gather(*(post(r.url, body, f"dlv_{n}") for r in receivers))
                assert sorted(at_once) in ([200, 200], [200, 409]), at_once
                # OpenTrain retries what was not acknowledged, and anyone may replay it.
                for r in receivers:
                    assert await post(r.url, body, f"dlv_{n}") == 200
                    assert await post(r.url, body, f"replayed_{n}") == 200
    finally:
        for ids in await asyncio.gather(*(r.stop() for r in receivers)):
            handled.extend(ids)
    assert sorted(handled) == [f"30{n:02d}" for n in range(10)]
