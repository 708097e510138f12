"""``on_event`` given as a plain function (``on_event=queue.put_nowait``, a ``def``): the
annotation says async, but ``callable()`` is all the handler checked.  On main the
function ran, then ``await None`` raised TypeError: inline, the delivery was answered
500 and released, so each of OpenTrain's retries ran it again (handled 6 times); in the
background, every delivery logged a failure it did not have."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import Event, WebhookHandler

from .test_webhook_dedupe import NOW, SECRET, _body, _headers

RETRIES = 5
"""OpenTrain retries a failed delivery up to 5 times (the spec)."""


@pytest.mark.parametrize("background", [True, False])
async def test_a_plain_function_handler_handles_each_event_once(
    background: bool, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[str] = []

    def on_event(event: Event) -> None:  # not async
        handled.append(event.id)

    handler = WebhookHandler(
        SECRET,
        on_event,
        background=background,
        clock=lambda: NOW,  # type: ignore[arg-type]
    )
    app = web.Application()
    handler.install(app, "/hooks")
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    body = _body("3001")
    statuses = []
    try:
        with caplog.at_level(logging.ERROR, logger="opentrain_async"):
            for _attempt in range(1 + RETRIES):  # a delivery, retried while not 2xx
                async with client.post("/hooks", data=body, headers=_headers(body, "d1")) as r:
                    statuses.append(r.status)
                if r.status < 300:
                    break
            await handler.drain()
    finally:
        await client.close()
    assert handled == ["3001"]
    assert statuses == [202 if background else 200]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
