"""Iterators yield items across pages (``limit`` is the page size), ``.pages()`` walks pages,
and no server can make a walk loop: an echoed cursor or a cycle (A -> B -> A) ends it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    Conversation,
    Event,
    InvalidRequestError,
    Message,
    OpenTrainClient,
)
from opentrain_async.testing import FakeOpenTrain


def _message(i: int) -> dict[str, Any]:
    return {
        "id": f"m{i}",
        "createdAt": "2026-06-12T09:15:00.000Z",
        "conversationId": "c1",
        "content": f"hi {i}",
    }


def _thread(server: FakeOpenTrain, n: int) -> tuple[str, list[str]]:
    cid = server.add_conversation()
    return cid, [server.add_incoming_message(cid, f"m{i}")["id"] for i in range(n)]


async def test_iter_messages_yields_every_message_across_pages(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``async for m in client.iter_messages(cid, limit=3)`` yields all 7 Messages, asking
    for pages of 3, and fetches the next page only when the current one is used up."""
    cid, ids = _thread(server, 7)
    server.clear_requests()
    walk = client.iter_messages(cid, limit=3)
    got = [await walk.__anext__()]
    assert isinstance(got[0], Message)
    assert len(server.requests) == 1
    got += [await walk.__anext__() for _ in range(2)]  # the rest of page 1: no request
    assert len(server.requests) == 1
    got += [m async for m in walk]
    assert sorted(m.id for m in got) == sorted(ids)
    assert [q.query["limit"] for q in server.requests] == ["3", "3", "3"]


async def test_iter_conversations_and_updates_yield_items(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Conversations and events come out one by one, across pages, each typed."""
    conversations = [server.add_conversation() for _ in range(5)]
    for i in range(5):
        server.add_event("custom.thing", {"i": i})
    seen = [c async for c in client.iter_conversations(limit=2)]
    assert all(isinstance(c, Conversation) for c in seen)
    assert sorted(c.id for c in seen) == sorted(conversations)
    events = [e async for e in client.iter_updates(limit=2)]
    assert all(isinstance(e, Event) for e in events)
    assert [e.data["i"] for e in events] == [0, 1, 2, 3, 4]


async def test_pages_walks_page_by_page_and_starts_over(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``.pages()`` yields the pages (limit-sized); each call starts a new walk."""
    cid, ids = _thread(server, 5)
    walk = client.iter_messages(cid, limit=2, direction="newer")
    pages = [p async for p in walk.pages()]
    assert [len(p.messages) for p in pages] == [2, 2, 1]
    assert not walk.repeated_cursor  # it ended at a null cursor
    again = [p async for p in walk.pages()]
    assert [m.id for p in again for m in p.messages] == [m.id for p in pages for m in p.messages]
    assert {m.id for p in pages for m in p.messages} == set(ids)


def test_iterators_check_their_parameters_when_called() -> None:
    """Bad parameters raise at the call, before any iteration or request."""
    client = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9")
    with pytest.raises(InvalidRequestError) as info:
        client.iter_messages("c1", limit=101)
    assert info.value.field == "limit"
    with pytest.raises(InvalidRequestError):
        client.iter_conversations(filter="unread")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        client.iter_updates(cursor="")
    assert client.stats.requests == 0


# -- servers that would make a walk loop -------------------------------------------------


class Pages:
    """A loopback API answering GETs with queued pages (the last one repeats), recording
    the query of every request: servers that misbehave in ways the fake one does not."""

    def __init__(self) -> None:
        self.queued: dict[str, list[dict[str, Any]]] = {}
        self.queries: list[dict[str, str]] = []

    def get(self, path: str, *, payload: dict[str, Any]) -> None:
        self.queued.setdefault(path, []).append(payload)

    async def handle(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        queue = self.queued[request.path.removeprefix("/api/public/v1")]
        return web.json_response(queue.pop(0) if len(queue) > 1 else queue[0])


@pytest.fixture
async def unit() -> AsyncIterator[tuple[Pages, OpenTrainClient]]:
    pages = Pages()
    app = web.Application()
    app.router.add_get("/{tail:.*}", pages.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with OpenTrainClient("ot_pat_unit", f"http://127.0.0.1:{server.port}") as client:
        yield pages, client
    await server.close()


def _cycle_pages(kind: str) -> list[dict[str, Any]]:
    """Three pages: None -> A, A -> B, B -> A (and B -> A forever after, canned repeats)."""
    if kind == "messages":
        key, make = "messages", _message
    elif kind == "conversations":
        key, make = "conversations", lambda i: {"id": f"c{i}"}
    else:
        key, make = "events", lambda i: {"id": f"e{i}", "type": "custom.thing"}
    pages = []
    for i, nxt in enumerate(["A", "B", "A"]):
        page: dict[str, Any] = {key: [make(i)], "nextCursor": nxt}
        if kind == "events":
            page["hasMore"] = True
        pages.append(page)
    return pages


WALKS: dict[str, Callable[[OpenTrainClient], Any]] = {
    "messages": lambda c: c.iter_messages("c1"),
    "conversations": lambda c: c.iter_conversations(),
    "events": lambda c: c.iter_updates(),
}


@pytest.mark.parametrize("kind", sorted(WALKS))
@pytest.mark.parametrize("by_page", [False, True])
async def test_a_cursor_cycle_ends_the_walk(
    unit: tuple[Pages, OpenTrainClient],
    kind: str,
    by_page: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server whose cursors go A -> B -> A ends the walk after the page that closed the
    cycle (three requests, three items), with a warning, instead of fetching forever."""
    canned, client = unit
    path = "/updates" if kind == "events" else "/messages"
    for page in _cycle_pages(kind):
        canned.get(path, payload=page)
    walk = WALKS[kind](client)
    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        if by_page:
            got = [p async for p in walk.pages()]
            assert len(got) == 3
        else:
            got = [item async for item in walk]
            assert [item.id[1:] for item in got] == ["0", "1", "2"]
    assert client.stats.requests == 3
    assert walk.repeated_cursor
    cursors = [query.get("cursor") for query in canned.queries]
    assert cursors == [None, "A", "B"]
    assert "already given" in caplog.text


async def test_an_echoed_cursor_on_an_empty_page_ends_quietly(
    unit: tuple[Pages, OpenTrainClient], caplog: pytest.LogCaptureFixture
) -> None:
    """The feed's "caught up" answer (an empty page echoing the cursor) ends the walk
    without a warning and without yielding an empty page."""
    canned, client = unit
    canned.get("/updates", payload={"events": [], "nextCursor": "7", "hasMore": True})
    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        walk = client.iter_updates(cursor="7")
        assert [p async for p in walk.pages()] == []
    assert walk.repeated_cursor
    assert client.stats.requests == 1
    assert caplog.text == ""
