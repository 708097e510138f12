"""Narrow read-side cases on scripted answers of the fake server: validation, malformed
bodies, shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opentrain_async import (
    InvalidRequestError,
    NotFoundError,
    OpenTrainClient,
    UnexpectedResponseError,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

MESSAGES = "/messages"
UPDATES = "/updates"
ME = "/auth/me"
CAPS = "/job-drafts/capabilities"

MESSAGE: dict[str, Any] = {
    "id": "m1",
    "createdAt": "2026-06-12T09:15:00.000Z",
    "conversationId": "c1",
    "isFromViewer": False,
    "content": "hi",
}


@pytest.fixture
async def client(server: FakeOpenTrain) -> AsyncIterator[OpenTrainClient]:
    t = FakeTime()
    async with OpenTrainClient(server.token, server.base_url, clock=t.clock, sleep=t.sleep) as c:
        yield c


@pytest.mark.parametrize(
    ("call", "field", "limit"),
    [
        (lambda c: c.list_conversations(limit=0), "limit", "1-100"),
        (lambda c: c.list_conversations(limit=101), "limit", "1-100"),
        (lambda c: c.list_conversations(limit=True), "limit", "1-100"),
        (lambda c: c.list_conversations(filter="unread"), "filter", "all | job | proposal"),
        (lambda c: c.list_conversations(unread_only="yes"), "unreadOnly", "bool"),
        (lambda c: c.list_conversations(cursor=""), "cursor", "None or non-empty string"),
        (lambda c: c.read_messages(""), "conversationId", "non-empty string"),
        (lambda c: c.read_messages("c1", limit=500), "limit", "1-100"),
        (lambda c: c.read_messages("c1", direction="up"), "direction", "older | newer"),
        (lambda c: c.read_messages("c1", cursor=5), "cursor", "None or non-empty string"),
        (lambda c: c.get_updates(limit=201), "limit", "1-200"),
        (lambda c: c.get_updates(limit=0), "limit", "1-200"),
        (lambda c: c.get_updates(cursor=" "), "cursor", "None or non-empty string"),
        (lambda c: c.start_proposal_conversation(" "), "proposalId", "non-empty string"),
    ],
)
async def test_parameters_are_validated_before_any_request(
    client: OpenTrainClient, server: FakeOpenTrain, call: Any, field: str, limit: str
) -> None:
    """Bad parameters raise InvalidRequestError naming field and rule; nothing is sent."""
    with pytest.raises(InvalidRequestError) as info:
        await call(client)
    assert (info.value.field, info.value.limit) == (field, limit)
    assert client.stats.requests == 0


@pytest.mark.parametrize(
    "make_iter",
    [
        lambda c: c.iter_conversations(limit=0),
        lambda c: c.iter_messages("c1", direction="sideways"),
        lambda c: c.iter_updates(limit=1000),
        lambda c: c.listen(limit=0),
        lambda c: c.listen(start="middle"),
        lambda c: c.listen(idle_backoff=-1),
        lambda c: c.listen(idle_backoff=5, max_idle_backoff=1),
        lambda c: c.listen(backoff_factor=0.5),
    ],
)
async def test_iterators_validate_on_first_step(
    client: OpenTrainClient, server: FakeOpenTrain, make_iter: Any
) -> None:
    """Iterators and listen() reject bad parameters before their first request."""
    with pytest.raises(InvalidRequestError):
        await make_iter(client).__anext__()
    assert client.stats.requests == 0


@pytest.mark.parametrize("key", ["messages", "items", "data"])
async def test_message_page_key_is_tolerated(
    client: OpenTrainClient, server: FakeOpenTrain, key: str
) -> None:
    """The array of messages may sit under messages, items or data."""
    server.script(f"GET {MESSAGES}", json={key: [MESSAGE], "nextCursor": "n1"})
    page = await client.read_messages("c1")
    assert [m.id for m in page.messages] == ["m1"]
    assert page.next_cursor == "n1"


async def test_message_page_may_be_a_bare_list(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """A bare JSON list is a single, final page."""
    server.script(f"GET {MESSAGES}", json=[MESSAGE])
    page = await client.read_messages("c1")
    assert ([m.id for m in page.messages], page.next_cursor) == (["m1"], None)


@pytest.mark.parametrize(
    "body",
    [
        {"nothing": []},
        {"messages": "nope"},
        {"messages": [{"id": "m1"}]},
        {"messages": [dict(MESSAGE, createdAt="yesterday")]},
        {"messages": [MESSAGE], "nextCursor": {"x": 1}},
        {"messages": [42]},
        "just a string",
    ],
)
async def test_malformed_message_pages_raise_unexpected_response(
    client: OpenTrainClient, server: FakeOpenTrain, body: Any
) -> None:
    """Wrong shapes become UnexpectedResponseError, never a cattrs or KeyError traceback."""
    server.script(f"GET {MESSAGES}", json=body)
    with pytest.raises(UnexpectedResponseError) as info:
        await client.read_messages("c1")
    assert info.value.status == 200
    assert info.value.path == "/messages"


@pytest.mark.parametrize(
    "body",
    [
        {"conversations": [{"type": "DIRECT_MESSAGE"}]},
        {"conversations": [{"id": "c1", "unreadCount": "1"}]},
        {"conversations": [{"id": "c1", "lastMessage": {"content": "x"}}]},
        {"conversations": None},
    ],
)
async def test_malformed_conversation_pages(
    client: OpenTrainClient, server: FakeOpenTrain, body: Any
) -> None:
    """A conversation without an id or with wrong types is an UnexpectedResponseError."""
    server.script(f"GET {MESSAGES}", json=body)
    with pytest.raises(UnexpectedResponseError):
        await client.list_conversations()


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"events": {"id": "1"}},
        {"events": [], "hasMore": "no"},
        {"events": [], "nextCursor": True},
    ],
)
async def test_malformed_update_pages(
    client: OpenTrainClient, server: FakeOpenTrain, body: Any
) -> None:
    """A malformed /updates page (not its events) is an UnexpectedResponseError."""
    server.script(f"GET {UPDATES}", json=body)
    with pytest.raises(UnexpectedResponseError):
        await client.get_updates()


@pytest.mark.parametrize(
    "event", [{"type": "message.received"}, {"id": "1", "type": "x", "data": "text"}]
)
async def test_unreadable_events_are_left_out_of_the_page(
    client: OpenTrainClient, server: FakeOpenTrain, event: Any
) -> None:
    """An event that cannot be read is skipped, not the page: its cursor still moves on
    (before, every read of this page raised and the feed stalled there)."""
    server.script(f"GET {UPDATES}", json={"events": [event], "nextCursor": "2"})
    page = await client.get_updates()
    assert (page.events, page.next_cursor) == ((), "2")


async def test_numeric_event_ids_and_cursor_become_strings(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """An unquoted numeric event id or cursor is read as its string form."""
    server.script(f"GET {UPDATES}", json={"events": [{"id": 7, "type": "x"}], "nextCursor": 8})
    page = await client.get_updates()
    assert (page.events[0].id, page.next_cursor, page.has_more) == ("7", "8", False)


@pytest.mark.parametrize(
    ("url", "body", "call"),
    [
        (ME, {"actor": None}, lambda c: c.whoami()),
        (
            ME,
            {"actor": {"userId": "u"}, "token": {"scopes": "messages:read"}},
            lambda c: c.whoami(),
        ),
        (CAPS, [], lambda c: c.capabilities()),
        (CAPS, {"capabilities": []}, lambda c: c.capabilities()),
        (CAPS, {"capabilities": {"messagingWrites": "yes"}}, lambda c: c.capabilities()),
        (CAPS, {"capabilities": {}, "enabled": 1}, lambda c: c.capabilities()),
    ],
)
async def test_malformed_identity_bodies(
    client: OpenTrainClient, server: FakeOpenTrain, url: str, body: Any, call: Any
) -> None:
    """Malformed /auth/me and capabilities bodies are UnexpectedResponseError."""
    server.script(f"GET {url}", json=body)
    with pytest.raises(UnexpectedResponseError):
        await call(client)


async def test_malformed_proposal_conversation_body(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """A proposal-conversation answer without conversationId is an UnexpectedResponseError."""
    server.script("POST /proposals/p1/conversation", json={"ok": True})
    with pytest.raises(UnexpectedResponseError):
        await client.start_proposal_conversation("p1")


async def test_reads_retry_gateway_errors(client: OpenTrainClient, server: FakeOpenTrain) -> None:
    """GET reads share the client's retry policy: a 503 then a 200 succeeds."""
    server.script(f"GET {MESSAGES}", status=503, body="<html>busy</html>", content_type="text/html")
    server.script(f"GET {MESSAGES}", json={"messages": [MESSAGE], "nextCursor": None})
    page = await client.read_messages("c1")
    assert len(page.messages) == 1
    assert client.stats.requests == 2


async def test_iterator_stops_on_echoed_cursor_with_no_items(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """A server that echoes the cursor on an empty page does not make iteration loop forever."""
    server.script(f"GET {MESSAGES}", json={"messages": [MESSAGE], "nextCursor": "n1"})
    server.script(f"GET {MESSAGES}", json={"messages": [], "nextCursor": "n1"})
    pages = [page async for page in client.iter_messages("c1").pages()]
    assert [len(p.messages) for p in pages] == [1]
    assert client.stats.requests == 2


async def test_iterator_stops_when_cursor_repeats_with_items(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """A page that hands back the very cursor it was given ends iteration after that page."""
    conversation = {"id": "c1"}
    server.script(f"GET {MESSAGES}", json={"conversations": [conversation], "nextCursor": "same"})
    pages = [p async for p in client.iter_conversations(cursor="same").pages()]
    assert [[c.id for c in p.conversations] for p in pages] == [["c1"]]
    assert client.stats.requests == 1


async def test_proposal_id_is_escaped_into_one_path_segment(
    client: OpenTrainClient, server: FakeOpenTrain
) -> None:
    """A proposal id with / or ? cannot reach another route: it stays one escaped segment."""
    server.script("POST /proposals/a/b/conversation", json={"ok": True})
    with pytest.raises(NotFoundError):
        await client.start_proposal_conversation("a/b?x")
    assert server.requests[-1].raw_path == "/api/public/v1/proposals/a%2Fb%3Fx/conversation"
