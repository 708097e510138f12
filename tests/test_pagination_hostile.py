"""A hostile server's pagination: stuck on one page, a blank next cursor; walks and
read-back end; a paginator shared by worker tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    DeliveryUnknownError,
    OpenTrainClient,
)
from opentrain_async._pagination import AsyncPaginator
from opentrain_async.testing import FakeOpenTrain, FakeTime

# -- a hostile server's pagination --------------------------------------------------------


class StuckAPI:
    """A loopback API stuck on one page: every GET answers the same items under a fresh
    cursor (``nextCursor`` of ``blank_cursor`` when set), every send a 502.  After 300 GETs
    it answers 500, so that a walk that does not stop fails instead of hanging."""

    def __init__(self) -> None:
        self.gets = 0
        self.blank_cursor: str | None = None
        self.url = ""

    async def page(self, request: web.Request) -> web.Response:
        self.gets += 1
        if self.gets > 300:
            return web.json_response({"error": "enough"}, status=500)
        cursor = self.blank_cursor if self.blank_cursor is not None else f"c{self.gets}"
        stamp = "2099-01-01T00:00:00.000Z"  # newer than any send: read-back reads on
        if request.path.endswith("/updates"):
            events = [{"id": "1", "type": "proposal.received", "createdAt": stamp, "data": {}}]
            return web.json_response({"events": events, "nextCursor": cursor, "hasMore": True})
        message = {
            "id": "m1",
            "conversationId": "conv_1",
            "createdAt": stamp,
            "content": "stuck",
            "isFromViewer": False,
        }
        key = "conversations" if "conversationId" not in request.query else "messages"
        item = {"id": "conv_1"} if key == "conversations" else message
        return web.json_response({key: [item], "nextCursor": cursor})

    async def send(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>")


@pytest.fixture
async def stuck_api() -> AsyncIterator[StuckAPI]:
    api = StuckAPI()
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.page)
    app.router.add_post("/{tail:.*}", api.send)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    api.url = f"http://127.0.0.1:{server.port}"
    yield api
    await server.close()


WALKS_OF: dict[str, Callable[[OpenTrainClient], AsyncPaginator[Any, Any]]] = {
    "messages": lambda c: c.iter_messages("conv_1"),
    "conversations": lambda c: c.iter_conversations(),
    "updates": lambda c: c.iter_updates(),
}


@pytest.mark.parametrize("kind", sorted(WALKS_OF))
@pytest.mark.parametrize("by_page", [False, True])
async def test_a_server_stuck_on_one_page_cannot_make_a_walk_endless(
    stuck_api: StuckAPI, kind: str, by_page: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """``async for m in client.iter_messages(cid)`` against a server that answers the same
    page under a new cursor every time ends after that page, with a warning, as a cursor
    cycle does; it yielded the same items forever before."""
    async with OpenTrainClient("ot_pat_x", stuck_api.url, max_retries=0) as client:
        walk = WALKS_OF[kind](client)
        with caplog.at_level(logging.WARNING, logger="opentrain_async"):
            if by_page:
                got = [
                    len(page.events if kind == "updates" else getattr(page, kind))
                    async for page in walk.pages()
                ]
            else:
                got = [1 async for _ in walk]
    assert got == [1]
    assert stuck_api.gets == 2
    assert walk.repeated_cursor
    assert "same page again" in caplog.text


async def test_read_back_against_a_stuck_server_is_unknown_at_once(
    stuck_api: StuckAPI, no_wait: FakeTime
) -> None:
    """A send answered 502 is read back; a conversation stuck on one page is "unknown"
    (never "not delivered", never a resend) after two pages, not after 120 s of reading
    the same page."""
    async with OpenTrainClient(
        "ot_pat_x", stuck_api.url, clock=no_wait.clock, sleep=no_wait.sleep, reconcile=True
    ) as client:
        with pytest.raises(DeliveryUnknownError, match="read back"):
            await client.send_message("conv_1", "hello")
    assert stuck_api.gets == 2


@pytest.mark.parametrize("blank", ["", "  "])
async def test_a_blank_next_cursor_is_the_last_page(stuck_api: StuckAPI, blank: str) -> None:
    """``nextCursor: ""`` (the spec says null) ends an ``iter_*`` walk; it used to be
    passed back and refused as the caller's own bad ``cursor`` (InvalidRequestError).
    The page still shows what the server said."""
    stuck_api.blank_cursor = blank
    async with OpenTrainClient("ot_pat_x", stuck_api.url) as client:
        assert (await client.read_messages("conv_1")).next_cursor == blank
        assert [m.id async for m in client.iter_messages("conv_1")] == ["m1"]
        assert [e.id async for e in client.iter_updates()] == ["1"]


async def test_worker_tasks_can_share_one_paginator(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Three workers each running ``async for m in walk`` over one ``iter_messages``: every
    message goes to exactly one of them (two raised "anext(): asynchronous generator is
    already running", a RuntimeError, while the third was fetching a page)."""
    conv = server.add_conversation()
    for i in range(45):
        server.add_incoming_message(conv, f"m{i}")
    walk = client.iter_messages(conv, limit=10)
    seen: list[str] = []

    async def worker() -> None:
        async for message in walk:
            seen.append(message.content)
            await asyncio.sleep(0)

    await asyncio.gather(worker(), worker(), worker())
    assert sorted(seen) == sorted(f"m{i}" for i in range(45))
