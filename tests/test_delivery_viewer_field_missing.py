"""A server whose message objects lack ``isFromViewer`` (the API reshaped, or a proxy
dropping fields) stores every send but never says it is ours.  On 76ca173 the 201 was
taken for a lie and read-back, unable to tell either, reported "not there" and resent,
up to ``max_retries`` times: six copies of each message.  README "What is guaranteed":
when read-back cannot tell, the outcome is ``DeliveryUnknownError``, never a guess."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from opentrain_async import OpenTrainClient

from .loopback import serving

TOKEN = "ot_pat_no_viewer_field"


@contextlib.asynccontextmanager
async def without_viewer_field(
    lose_first_answer: bool = False,
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Stores every POST; answers and lists messages without ``isFromViewer``.  With
    ``lose_first_answer`` the first POST is stored and then answered 502."""
    stored: list[dict[str, Any]] = []

    async def post(request: web.Request) -> web.Response:
        sent = json.loads(await request.read())
        message = {
            "id": f"msg_{len(stored)}",
            "conversationId": sent["conversationId"],
            "content": sent["content"],
            "senderUserId": "user_me",
            "createdAt": "2030-01-01T00:00:00.000Z",
        }
        stored.append(message)
        if lose_first_answer and len(stored) == 1:
            return web.json_response({"ok": False}, status=502)
        return web.json_response({"ok": True, "message": message}, status=201)

    async def get(request: web.Request) -> web.Response:
        return web.json_response({"messages": stored[::-1], "nextCursor": None})

    app = web.Application()
    app.router.add_post("/api/public/v1/messages", post)
    app.router.add_get("/api/public/v1/messages", get)
    async with serving(app) as url:
        yield url, stored


async def test_a_server_hiding_whose_message_it_is_gets_each_message_once() -> None:
    async with (
        without_viewer_field() as (url, stored),
        OpenTrainClient(TOKEN, url, env={}) as client,
    ):
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "hello")])
    assert report.counts["sent"] + report.counts["delivery_unknown"] == 1
    assert [m["content"] for m in stored] == ["hello"]  # on 76ca173: six copies


async def test_read_back_that_cannot_tell_whose_message_says_unknown() -> None:
    async with (
        without_viewer_field(lose_first_answer=True) as (url, stored),
        OpenTrainClient(TOKEN, url, env={}) as client,
    ):
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "hello")])
    assert report.counts["delivery_unknown"] == 1  # our "hello" or theirs: not a guess
    assert [m["content"] for m in stored] == ["hello"]
