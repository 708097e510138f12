"""A server's 2xx is proof of delivery only if it describes the message we sent.

The fake server is scripted to lie: a 201 whose message has other content, a 201 with
``isFromViewer: false``, a 200 saying ``"ok": false`` (and, from before, another
conversation's message or an id already claimed).  Nothing is stored, or the message
is stored and the answer still lies: either way the outcome is unknown, read-back
settles it, and every message lands exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest

from opentrain_async import DeliveryUnknownError, OpenTrainClient
from opentrain_async._delivery import answer_mismatch
from opentrain_async._models import Message, structure_message_hook
from opentrain_async.testing import FakeOpenTrain

AT = "2026-11-25T12:00:00.000Z"


def lie(conversation_id: str, content: str, /, **overrides: Any) -> dict[str, Any]:
    """A 2xx body for a message the server did not store (``ok`` and fields overridable)."""
    ok = overrides.pop("ok", True)
    message = {
        "id": overrides.pop("id", "msg_lie_1"),
        "conversationId": conversation_id,
        "createdAt": AT,
        "updatedAt": AT,
        "isFromViewer": True,
        "content": overrides.pop("content", content),
        **overrides,
    }
    return {"ok": ok, "message": message}


LIES = {
    "other content": (201, {"content": "something else"}),
    "not from the viewer": (201, {"isFromViewer": False}),
    "ok false": (200, {"ok": False}),
}


def _message(body: dict[str, Any]) -> Message:
    parsed: Message = structure_message_hook(body["message"], Message)
    return parsed


def test_the_predicate_names_what_does_not_match() -> None:
    """One predicate: each way an answer can fail to describe our send has a reason,
    and the honest answer has none."""
    honest = lie("c1", "hi", id="m1")
    assert answer_mismatch(honest, _message(honest), "c1", "hi", set()) is None
    assert (
        answer_mismatch({"message": honest["message"]}, _message(honest), "c1", "hi", set()) is None
    )
    cases = {
        "ok=False": lie("c1", "hi", ok=False),
        "ok=None": lie("c1", "hi", ok=None),
        "other content": lie("c1", "hello"),
        "isFromViewer false": lie("c1", "hi", isFromViewer=False),
        "conversation 'c2'": lie("c2", "hi"),
    }
    for reason, body in cases.items():
        why = answer_mismatch(body, _message(body), "c1", "hi", set())
        assert why is not None
        assert reason in why
    reused = lie("c1", "hi", id="m1")
    assert "already the outcome" in str(
        answer_mismatch(reused, _message(reused), "c1", "hi", {"m1"})
    )


@pytest.mark.parametrize("kind", sorted(LIES))
async def test_a_lie_is_an_unknown_outcome_not_a_delivery(server: FakeOpenTrain, kind: str) -> None:
    """Without read-back the caller is told the outcome is unknown; with it, the
    message is found missing and sent: stored exactly once."""
    conv = server.add_conversation()
    status, overrides = LIES[kind]
    server.script("POST /messages", status=status, json=lie(conv, "hello", **overrides))
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(DeliveryUnknownError, match="but the answer is"):
            await client.send_message(conv, "hello")
        assert server.messages(conv) == []
        server.script("POST /messages", status=status, json=lie(conv, "again", **overrides))
        sent = await client.send_message(conv, "again", reconcile=True)
    assert (sent.conversation_id, sent.content, sent.is_from_viewer) == (conv, "again", True)
    assert [m["content"] for m in server.messages(conv)] == ["again"]


@pytest.mark.parametrize("kind", sorted(LIES))
async def test_a_lie_after_the_message_was_stored_is_found_not_resent(
    server: FakeOpenTrain, kind: str
) -> None:
    """The server stored the message and then answered with a lie: read-back finds
    the stored one, so nothing is sent twice."""
    conv = server.add_conversation()
    status, overrides = LIES[kind]
    server.script(
        "POST /messages", status=status, json=lie(conv, "once", **overrides), after_commit=True
    )
    async with OpenTrainClient(server.token, server.base_url) as client:
        sent = await client.send_message(conv, "once", reconcile=True)
    stored = server.messages(conv)
    assert [m["content"] for m in stored] == ["once"]
    assert sent.id == stored[0]["id"]
    assert server.stats()["duplicates"] == 0


async def test_bulk_counts_no_lie_as_sent(server: FakeOpenTrain) -> None:
    """send_many over a server lying to every third send (each kind in turn): every
    input one outcome, all sent, each message stored once."""
    conv = server.add_conversation()
    items = [(conv, f"notice {i}") for i in range(12)]
    for i in range(0, 12, 3):
        status, overrides = LIES[sorted(LIES)[i // 3 % 3]]
        server.script("POST /messages", status=status, json=lie(conv, f"x{i}", **overrides))
    async with OpenTrainClient(server.token, server.base_url) as client:
        outcomes = [o async for o in client.send_many(items, concurrency=1)]
    assert len(outcomes) == 12
    assert all(o.ok for o in outcomes), [o.kind for o in outcomes]
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == sorted(content for _, content in items)
    assert server.stats()["duplicates"] == 0
