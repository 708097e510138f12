"""``messages --follow`` against a server that mints a new cursor for every older page
(a hostile or broken server: a filter that drops every message, a cursor per request).
A poll that finds no message it has shown pages back (``_read._newest``) until a page
holds one, or an older one, or a cursor comes back; so older pages that are empty, or
that repeat a page already walked (its messages new to the tail, since it prints them
after the walk), kept the walk going for as long as the server minted cursors: the
tail hammered the server without end and never polled the newest page again (the
bound on the messages walked, 10,000, counts none on an empty page).  Now an empty
page, or one holding a message walked already, ends the walk.  (Both failed on main:
the server stopped it after 300 pages.)
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from aiohttp import web

from .cli_helpers import cli
from .loopback import serving, stamp

_ENOUGH = 300  # cursor pages the server mints before it gives up (main walked them all)


def _message(n: int, content: str) -> dict[str, Any]:
    return {
        "id": f"msg_{n}",
        "conversationId": "conv_1",
        "createdAt": stamp(),
        "updatedAt": stamp(),
        "senderUserId": "user_other",
        "isFromViewer": False,
        "content": content,
    }


@pytest.mark.parametrize("older", ["empty", "repeated"])
async def test_follow_stops_paging_back_at_an_empty_or_repeated_page(older: str) -> None:
    polls = itertools.count()
    cursors = itertools.count()
    walked = 0

    async def messages(request: web.Request) -> web.Response:
        nonlocal walked
        if "cursor" in request.query:
            walked += 1
            more = f"c{next(cursors)}" if walked < _ENOUGH else None
            page = [] if older == "empty" else [_message(9, "older, again")]
            return web.json_response({"messages": page, "nextCursor": more})
        poll = next(polls)
        if poll == 0:
            return web.json_response({"messages": [_message(1, "before")], "nextCursor": None})
        if poll == 1:  # nothing shown on the newest page: it pages back
            page = [_message(3, "new")]
            return web.json_response({"messages": page, "nextCursor": f"c{next(cursors)}"})
        page = [_message(2, "after"), _message(1, "before")]
        return web.json_response({"messages": page, "nextCursor": None})

    app = web.Application()
    app.router.add_get("/{tail:.*}/messages", messages)
    async with serving(app) as url:
        args = ("messages", "conv_1", "--follow", "--interval", "0.01", "--max", "3")
        result = await cli(*args, OT_API_TOKEN="ot_pat_x", OT_API_BASE_URL=url, timeout=20)
    assert result.code == 0, result.err
    shown = [line.rsplit(": ", 1)[1] for line in result.out.splitlines()]
    assert shown == ["before", "new", "after" if older == "empty" else "older, again"]
    assert walked < 5
