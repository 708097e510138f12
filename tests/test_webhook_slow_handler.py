"""An inline (``background=False``) webhook handler slower than the claim it holds.

OpenTrain stops waiting after 10 s and retries; while the first delivery is still being
handled each retry must get 409, whatever the handler's duration.  The claim is held
for ``PENDING_TTL`` (120 s) and not renewed, so a retry after that is handled again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import Event, MemoryDedupeStore, WebhookHandler, sign_webhook_payload
from opentrain_async._webhooks import PENDING_TTL

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


@pytest.mark.xfail(
    strict=True,
    reason=(
        "background=False claims an event for PENDING_TTL (120 s) and never renews the "
        "claim while on_event runs: a retry arriving after 120 s, with the first "
        "handling still running, is handed to on_event a second time"
    ),
)
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
