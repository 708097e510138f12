"""The read side end to end against the fake server over loopback HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from opentrain_async import (
    ConflictError,
    Conversation,
    Event,
    Message,
    NotFoundError,
    OpenTrainClient,
    PermissionDeniedError,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


def _conversations(server: FakeOpenTrain, n: int, **options: Any) -> list[str]:
    ids = []
    for i in range(n):
        cid = server.add_conversation(**options)
        server.add_incoming_message(cid, f"hello {i}")
        ids.append(cid)
    return ids


# -- list mode -----------------------------------------------------------------------


async def test_list_conversations_is_typed(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """A listed conversation carries its last message, unread counts and ids, typed."""
    cid = server.add_conversation(job_id="job_1", bucket="job")
    server.add_incoming_message(cid, "first")
    server.add_incoming_message(cid, "second")
    page = await client.list_conversations()
    assert page.next_cursor is None
    [conversation] = page.conversations
    assert isinstance(conversation, Conversation)
    assert (conversation.id, conversation.job_id, conversation.bucket) == (cid, "job_1", "job")
    assert conversation.unread_count == 2
    assert conversation.last_message is not None
    assert conversation.last_message.content == "second"
    assert conversation.last_message.is_from_viewer is False
    assert conversation.updated_at is not None
    assert conversation.updated_at.tzinfo is not None


async def test_list_conversations_empty(client: OpenTrainClient) -> None:
    """An account with no conversations gets one empty, final page."""
    page = await client.list_conversations()
    assert (page.conversations, page.next_cursor) == ((), None)
    assert [p async for p in client.iter_conversations().pages()] == [page]


async def test_iter_conversations_pages_lazily_over_everything(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """iter_conversations fetches one page per step and ends at a null cursor."""
    ids = _conversations(server, 5)
    server.clear_requests()
    pages = client.iter_conversations(limit=2).pages()
    first = await pages.__anext__()
    assert len(first.conversations) == 2
    assert len(server.requests) == 1  # nothing fetched ahead
    rest = [page async for page in pages]
    seen = [c.id for page in [first, *rest] for c in page.conversations]
    assert sorted(seen) == sorted(ids)
    assert len(set(seen)) == 5
    assert rest[-1].next_cursor is None
    assert len(server.requests) == 3


@pytest.mark.parametrize("bucket", ["job", "proposal"])
async def test_list_conversations_filter(
    server: FakeOpenTrain, client: OpenTrainClient, bucket: str
) -> None:
    """filter=job / filter=proposal return only that bucket; all returns both."""
    jobs = _conversations(server, 2, bucket="job")
    proposals = _conversations(server, 1, bucket="proposal")
    page = await client.list_conversations(filter=bucket)  # type: ignore[arg-type]
    expected = jobs if bucket == "job" else proposals
    assert sorted(c.id for c in page.conversations) == sorted(expected)
    everything = await client.list_conversations(filter="all")
    assert len(everything.conversations) == 3


async def test_list_conversations_unread_only(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """unread_only drops conversations where the viewer has replied last."""
    unread, answered = _conversations(server, 2)
    await client.send_message(answered, "thanks")
    page = await client.list_conversations(unread_only=True)
    assert [c.id for c in page.conversations] == [unread]
    assert server.requests[-1].query["unreadOnly"] == "true"


# -- message mode ----------------------------------------------------------------------


def _thread(server: FakeOpenTrain, n: int) -> tuple[str, list[str]]:
    cid = server.add_conversation()
    ids = [server.add_incoming_message(cid, f"m{i}")["id"] for i in range(n)]
    return cid, ids


async def test_read_messages_returns_the_send_message_class(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Read messages are the same Message class sends return, with viewer flags."""
    cid, _ = _thread(server, 1)
    sent = await client.send_message(cid, "reply")
    page = await client.read_messages(cid)
    assert all(isinstance(m, Message) for m in page.messages)
    by_id = {m.id: m for m in page.messages}
    assert by_id[sent.id] == sent
    assert sorted(m.is_from_viewer for m in page.messages) == [False, True]


@pytest.mark.parametrize("direction", ["older", "newer"])
async def test_iter_messages_both_directions_cover_the_thread(
    server: FakeOpenTrain, client: OpenTrainClient, direction: str
) -> None:
    """Paging older or newer visits every message exactly once, in page-sized steps."""
    cid, ids = _thread(server, 7)
    pages = [
        p
        async for p in client.iter_messages(cid, direction=direction, limit=3).pages()  # type: ignore[arg-type]
    ]
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    seen = [m.id for p in pages for m in p.messages]
    assert sorted(seen) == sorted(ids)
    assert all(q.query["direction"] == direction for q in server.requests)
    # the first page holds the newest (older) or the oldest (newer) messages, in any order
    first = {m.id for m in pages[0].messages}
    assert first == set(ids[-3:] if direction == "older" else ids[:3])


async def test_read_messages_cursor_round_trip(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """next_cursor passed back with the same direction continues where the page ended."""
    cid, ids = _thread(server, 4)
    first = await client.read_messages(cid, limit=2, direction="newer")
    assert first.next_cursor is not None
    second = await client.read_messages(cid, limit=2, direction="newer", cursor=first.next_cursor)
    assert {m.id for m in second.messages} == set(ids[2:])
    assert second.next_cursor is None


async def test_read_messages_empty_conversation(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A conversation without messages reads as one empty, final page."""
    cid = server.add_conversation()
    page = await client.read_messages(cid)
    assert (page.messages, page.next_cursor) == ((), None)
    assert [p.messages async for p in client.iter_messages(cid).pages()] == [()]
    assert [m async for m in client.iter_messages(cid)] == []


async def test_read_messages_errors_are_typed(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Unknown conversations are NotFoundError; others' conversations PermissionDeniedError."""
    with pytest.raises(NotFoundError):
        await client.read_messages("conv_missing")
    foreign = server.add_conversation(participant=False)
    with pytest.raises(PermissionDeniedError):
        await client.read_messages(foreign)


async def test_read_needs_a_read_scope(server: FakeOpenTrain) -> None:
    """A token without messages:read gets PermissionDeniedError on reads."""
    server.add_token("ot_pat_proposals_only", scopes=["proposals:read"])
    async with make_client(server, token="ot_pat_proposals_only") as client:
        with pytest.raises(PermissionDeniedError):
            await client.list_conversations()


async def test_iterators_stop_when_the_server_echoes_its_cursor(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A server stuck echoing the same cursor ends iteration instead of looping forever."""
    cid, _ = _thread(server, 5)
    _conversations(server, 3)
    for i in range(5):
        server.add_event("custom.thing", {"i": i})
    server.echo_cursor_bug = True
    message_pages = [p async for p in client.iter_messages(cid, limit=2).pages()]
    conversation_pages = [p async for p in client.iter_conversations(limit=2).pages()]
    update_pages = [p async for p in client.iter_updates(limit=2).pages()]
    assert len(message_pages) <= 3
    assert len(conversation_pages) <= 3
    assert len(update_pages) <= 3
    assert len(server.requests) <= 9


# -- proposals -----------------------------------------------------------------------


async def test_start_proposal_conversation_is_idempotent(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The first call creates the thread (created=True), the next returns it (created=False)."""
    server.add_proposal("prop_1", job_id="job_9")
    first = await client.start_proposal_conversation("prop_1")
    again = await client.start_proposal_conversation("prop_1")
    assert (first.created, again.created) == (True, False)
    assert first.conversation_id == again.conversation_id
    assert (first.proposal_id, first.job_id) == ("prop_1", "job_9")
    await client.send_message(first.conversation_id, "Thanks for applying!")
    page = await client.list_conversations(filter="proposal")
    assert [c.proposal_id for c in page.conversations] == ["prop_1"]


async def test_start_proposal_conversation_errors(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """404 unknown proposal, 409 not ready, 403 employer-first for the candidate."""
    server.add_proposal("prop_not_ready", ready=False)
    server.add_proposal("prop_as_candidate", owner=False)
    with pytest.raises(NotFoundError):
        await client.start_proposal_conversation("prop_missing")
    with pytest.raises(ConflictError) as conflict:
        await client.start_proposal_conversation("prop_not_ready")
    assert conflict.value.reason == "proposal_not_ready_for_messaging"
    with pytest.raises(PermissionDeniedError) as denied:
        await client.start_proposal_conversation("prop_as_candidate")
    assert denied.value.reason == "employer_first_message_required"


async def test_start_proposal_conversation_needs_write_access(server: FakeOpenTrain) -> None:
    """Without messages:write, or on an unclaimed account, opening the thread is refused."""
    server.add_proposal("prop_1")
    server.add_token("ot_pat_read", scopes=["messages:read"])
    server.add_token("ot_pat_unclaimed", claimed=False)
    async with make_client(server, token="ot_pat_read") as reader:
        with pytest.raises(PermissionDeniedError) as scope:
            await reader.start_proposal_conversation("prop_1")
    async with make_client(server, token="ot_pat_unclaimed") as unclaimed:
        with pytest.raises(PermissionDeniedError) as claim:
            await unclaimed.start_proposal_conversation("prop_1")
    assert scope.value.reason == "insufficient_scope"
    assert claim.value.claim_url is not None


# -- the updates feed ------------------------------------------------------------------


async def test_get_updates_empty_feed_echoes_cursor(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """An empty page echoes the cursor it was given and says hasMore False."""
    page = await client.get_updates()
    assert (page.events, page.has_more) == ((), False)
    server.add_event("custom.thing")
    head = await client.get_updates()
    assert head.next_cursor is not None
    tail = await client.get_updates(cursor=head.next_cursor)
    assert (tail.events, tail.next_cursor, tail.has_more) == ((), head.next_cursor, False)


async def test_incoming_messages_appear_as_message_received(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """An incoming message adds a message.received event that says where to read."""
    cid = server.add_conversation()
    message = server.add_incoming_message(cid, "ping")
    page = await client.get_updates()
    [event] = page.events
    assert isinstance(event, Event)
    assert event.type == "message.received"
    assert (event.conversation_id, event.message_id) == (cid, message["id"])
    assert event.api_version == "v1"
    assert event.created_at is not None


async def test_unknown_event_types_pass_through(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Events of types the SDK does not know arrive as plain Events with their data."""
    server.add_event("robot.learned_to_dance", {"style": "waltz"}, resource_id="r1", job_id="j1")
    server.add_event("proposal.received", {"proposalId": "p1"})
    page = await client.get_updates()
    assert [e.type for e in page.events] == ["robot.learned_to_dance", "proposal.received"]
    assert page.events[0].data == {"style": "waltz"}
    assert (page.events[0].resource_id, page.events[0].job_id) == ("r1", "j1")
    assert page.events[0].conversation_id is None


async def test_get_updates_reads_around_malformed_events(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The raw read is tolerant too: a field that does not parse is None, a record that
    cannot be read (no id, data not an object) is left out, and the cursor still moves."""
    good = {"id": "4", "type": "custom.thing", "data": {"i": 4}}
    events = [
        {
            "id": 1,
            "type": "custom.thing",
            "createdAt": "not a time",
            "apiVersion": 2,
            "jobId": "j1",
        },
        {"id": "2", "type": "custom.thing", "data": [1]},
        {"type": "custom.thing"},
        {"id": "3", "type": {"shape": "odd"}},
        "not an object",
        good,
    ]
    server.script("GET /updates", json={"events": events, "nextCursor": "5", "hasMore": False})
    page = await client.get_updates()
    assert [e.id for e in page.events] == ["1", "4"]
    first = page.events[0]
    assert (first.created_at, first.api_version, first.job_id) == (None, None, "j1")
    assert page.next_cursor == "5"


async def test_iter_updates_pages_oldest_first_and_stops_caught_up(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """iter_updates walks the feed in limit-sized pages and ends when hasMore is False."""
    for i in range(5):
        server.add_event("custom.thing", {"i": i})
    pages = [p async for p in client.iter_updates(limit=2).pages()]
    assert [len(p.events) for p in pages] == [2, 2, 1]
    assert [p.has_more for p in pages] == [True, True, False]
    assert [e.data["i"] for p in pages for e in p.events] == [0, 1, 2, 3, 4]
    server.add_event("custom.thing", {"i": 5})
    resumed = [e async for e in client.iter_updates(cursor=pages[-1].next_cursor)]
    assert [e.data["i"] for e in resumed] == [5]


# -- identity and preflight ------------------------------------------------------------


async def test_whoami_and_capabilities(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """whoami() reports the actor and scopes; capabilities() the messagingWrites flag."""
    me = await client.whoami()
    assert me.actor.user_id == server.user_id
    assert "messages:write" in me.token.scopes
    assert me.has_scope("messages:read")
    caps = await client.capabilities()
    assert caps.messaging_writes is True
    assert caps.flags["messagingWrites"] is True


async def test_preflight_all_good(client: OpenTrainClient) -> None:
    """A fully provisioned token can send and has no problems."""
    result = await client.preflight()
    assert result.can_send
    assert bool(result)
    assert result.problems == ()


async def test_preflight_missing_scope(server: FakeOpenTrain) -> None:
    """A read-only token is told to get messages:write."""
    server.add_token("ot_pat_ro", scopes=["messages:read"])
    async with make_client(server, token="ot_pat_ro") as client:
        result = await client.preflight()
    assert not result.can_send
    [problem] = result.problems
    assert (problem.code, problem.missing) == ("missing_scope", "messages:write")
    assert "messages:read" in problem.fix


async def test_preflight_unclaimed_account_gives_claim_url(server: FakeOpenTrain) -> None:
    """An unclaimed (agent-registered) account is told where to claim it."""
    server.add_token("ot_pat_agent", scopes=["messages:read"], claimed=False)
    async with make_client(server, token="ot_pat_agent") as client:
        result = await client.preflight()
    codes = [p.code for p in result.problems]
    assert codes == ["account_not_claimed", "missing_scope"]
    claim = result.problems[0]
    assert claim.url == "https://app.opentrain.ai/claim"
    assert claim.url in claim.fix


async def test_preflight_messaging_writes_disabled(server: FakeOpenTrain) -> None:
    """An account without the messagingWrites capability is told so."""
    server.add_token("ot_pat_nofeature", messaging_writes=False)
    async with make_client(server, token="ot_pat_nofeature") as client:
        result = await client.preflight()
    [problem] = result.problems
    assert (problem.code, problem.missing) == ("messaging_writes_disabled", "messagingWrites")


async def test_preflight_predicts_the_send_outcome(server: FakeOpenTrain) -> None:
    """Whenever preflight says a token cannot send, a real send is refused with 403."""
    cid = server.add_conversation()
    cases = {
        "ot_pat_a": {"scopes": ["messages:read"]},
        "ot_pat_b": {"claimed": False},
        "ot_pat_c": {"messaging_writes": False},
    }
    for token, options in cases.items():
        server.conversation(cid).participants.add(server.add_token(token, **options).user_id)
        t = FakeTime()
        async with make_client(server, token=token, clock=t.clock, sleep=t.sleep) as client:
            assert not (await client.preflight()).can_send
            with pytest.raises(PermissionDeniedError):
                await client.send_message(cid, "hi")
