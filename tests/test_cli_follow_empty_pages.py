"""``messages --follow`` against a server whose older pages are empty and each hand
back a new cursor (a hostile or broken server: a filter that drops every message, a
cursor minted per request).  A poll that finds no message it has shown pages back
(``_read._newest``), and an empty page shows none, so the walk went on for as long as
the server minted cursors: the tail hammered the server without end and never polled
the newest page again.  Only a cursor handed back twice ended it, and the bound on the
messages walked (10,000) counts none on an empty page.  Now an empty page ends the
walk.  (Failed on main: the server stopped it after 300 pages.)
"""

from __future__ import annotations

import itertools
from typing import Any

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


async def test_follow_stops_paging_back_at_an_empty_page() -> None:
    polls = itertools.count()
    cursors = itertools.count()
    walked = 0

    async def messages(request: web.Request) -> web.Response:
        nonlocal walked
        if "cursor" in request.query:
            walked += 1
            more = f"c{next(cursors)}" if walked < _ENOUGH else None
            return web.json_response({"messages": [], "nextCursor": more})
        poll = next(polls)
        if poll == 0:
            return web.json_response({"messages": [_message(1, "before")], "nextCursor": None})
        if poll == 1:  # nothing new, an empty newest page pointing back
            return web.json_response({"messages": [], "nextCursor": f"c{next(cursors)}"})
        page = [_message(2, "after"), _message(1, "before")]
        return web.json_response({"messages": page, "nextCursor": None})

    app = web.Application()
    app.router.add_get("/{tail:.*}/messages", messages)
    async with serving(app) as url:
        args = ("messages", "conv_1", "--follow", "--interval", "0.01", "--max", "2")
        result = await cli(*args, OT_API_TOKEN="ot_pat_x", OT_API_BASE_URL=url, timeout=20)
    assert result.code == 0, result.err
    assert [line.rsplit(": ", 1)[1] for line in result.out.splitlines()] == ["before", "after"]
    assert walked < 5
