"""A server mixing messages with and without ``isFromViewer``: ours say so, the other
side's echo of our text does not (a proxy dropping the field on some rows, a bridge that
relays the peer's messages).  The answer to our POST is lost (502), and before read-back
the peer sends the same text.  Walking back one message per page, read-back met the
peer's unattributed "ok" first and, on 748ad8c, stopped there with
``DeliveryUnknownError``, although our own attributed "ok" was on the next page.  It now
reads on to before the first attempt and answers "delivered" when it finds ours; it
refuses to guess only when no attributed match turns up."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from opentrain_async import OpenTrainClient

from .loopback import serving

TOKEN = "ot_pat_mixed_viewer_field"


@contextlib.asynccontextmanager
async def mixing_server(ours_attributed: bool) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Stores each POST and answers the first 502; the peer then echoes its text without
    ``isFromViewer``.  Lists one message per page, newest first."""
    stored: list[dict[str, Any]] = []

    def stamp(index: int) -> str:
        return f"2030-01-01T00:00:{index:02d}.000Z"

    async def post(request: web.Request) -> web.Response:
        sent = json.loads(await request.read())
        mine = {
            "id": f"msg_{len(stored)}",
            "conversationId": sent["conversationId"],
            "content": sent["content"],
            "senderUserId": "user_me",
            "createdAt": stamp(len(stored)),
        }
        if ours_attributed:
            mine["isFromViewer"] = True
        stored.append(mine)
        if len(stored) == 1:
            echo = {**mine, "id": "msg_peer", "senderUserId": "user_peer"}
            echo.pop("isFromViewer", None)
            echo["createdAt"] = stamp(len(stored))
            stored.append(echo)
            return web.json_response({"ok": False}, status=502)
        return web.json_response({"ok": True, "message": mine}, status=201)

    async def get(request: web.Request) -> web.Response:
        newest_first = stored[::-1]
        index = int(request.query.get("cursor", "0"))
        more = index + 1 < len(newest_first)
        return web.json_response(
            {
                "messages": newest_first[index : index + 1],
                "nextCursor": str(index + 1) if more else None,
            }
        )

    app = web.Application()
    app.router.add_post("/api/public/v1/messages", post)
    app.router.add_get("/api/public/v1/messages", get)
    async with serving(app) as url:
        yield url, stored


async def test_read_back_reads_past_the_peer_s_unattributed_echo_to_our_message() -> None:
    async with (
        mixing_server(ours_attributed=True) as (url, stored),
        OpenTrainClient(TOKEN, url, env={}) as client,
    ):
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "ok")])
    assert report.counts["sent"] == 1  # on 748ad8c: delivery_unknown
    assert [m["id"] for m in stored] == ["msg_0", "msg_peer"]  # never resent


async def test_with_no_attributed_match_read_back_still_refuses_to_guess() -> None:
    async with (
        mixing_server(ours_attributed=False) as (url, stored),
        OpenTrainClient(TOKEN, url, env={}) as client,
    ):
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "ok")])
    assert report.counts["delivery_unknown"] == 1
    assert [m["id"] for m in stored] == ["msg_0", "msg_peer"]


async def test_the_message_a_201_named_is_ours_without_the_field_too() -> None:
    """A server that trims what it stores and leaves ``isFromViewer`` out: its 201 names
    the stored message, other content, so read-back looks for it by that id.  The 201
    answers our own POST (the rule ``answer_mismatch`` applies to a 201 without the
    field), so the message it named is ours; on 748ad8c read-back found it by id,
    could not tell whose it was and reported ``DeliveryUnknownError``."""
    stored: list[dict[str, Any]] = []

    async def post(request: web.Request) -> web.Response:
        sent = json.loads(await request.read())
        message = {
            "id": f"msg_{len(stored)}",
            "conversationId": sent["conversationId"],
            "content": sent["content"].strip(),
            "senderUserId": "user_me",
            "createdAt": "2030-01-01T00:00:00.000Z",
        }
        stored.append(message)
        return web.json_response({"ok": True, "message": message}, status=201)

    async def get(request: web.Request) -> web.Response:
        return web.json_response({"messages": stored[::-1], "nextCursor": None})

    app = web.Application()
    app.router.add_post("/api/public/v1/messages", post)
    app.router.add_get("/api/public/v1/messages", get)
    async with serving(app) as url, OpenTrainClient(TOKEN, url, env={}) as client:
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "  hello  ")])
    assert report.counts["sent"] == 1  # on 748ad8c: delivery_unknown
    assert [m["content"] for m in stored] == ["hello"]
