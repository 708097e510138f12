"""A server that answers 201 with another conversation's message, or an id it used
before: never taken as delivered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async import DeliveryUnknownError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


def _records(conv: str, n: int, *, keys: bool = False) -> list[dict[str, str]]:
    return [
        {"conversationId": conv, "content": f"notice {i}", **({"key": f"n-{i}"} if keys else {})}
        for i in range(n)
    ]


def _lie(message_id: str, conversation_id: str, content: str) -> str:
    """A 201 answer for a message the server did not store."""
    at = "2026-11-25T12:00:00.000Z"
    message = {
        "id": message_id,
        "conversationId": conversation_id,
        "createdAt": at,
        "updatedAt": at,
        "isFromViewer": True,
        "content": content,
    }
    return json.dumps({"ok": True, "message": message})


async def test_a_201_for_another_conversation_or_a_reused_id_is_not_taken_as_delivered(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A server (or proxy cache) that lies: 201 with a message of another conversation,
    then 201 with the id it gave an earlier input, and nothing stored either time.  Both
    were journaled as delivered (exit 0, 2 of 3 messages lost).  Now such an answer is
    an unknown outcome: read back, not found, sent: every message once."""
    conv, other = server.add_conversation(), server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 3))
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--concurrency", "1", "--json", env=env)
    assert first.code == 0, first.err
    job = write_jsonl(tmp_path / "job.jsonl", [*_records(conv, 3), *_records(conv, 5)[3:]])
    server.fail_next(1, status=201, body=_lie("msg_777777", other, "notice 3"))
    reused = server.messages(conv)[0]["id"]
    server.fail_next(1, status=201, body=_lie(reused, conv, "notice 4"))
    again = await run_cli("bulk", str(job), "--concurrency", "1", "--json", env=env)
    assert again.code == 0, again.err
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == [f"notice {i}" for i in range(5)]
    assert server.messages(other) == []


async def test_send_message_does_not_take_another_conversations_message_for_its_own(
    server: FakeOpenTrain,
) -> None:
    """The SDK side of the lie: without read-back, a 201 carrying a message of another
    conversation is DeliveryUnknownError, not a Message the caller records as sent."""
    conv, other = server.add_conversation(), server.add_conversation()
    server.fail_next(1, status=201, body=_lie("msg_777777", other, "hello"))
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(DeliveryUnknownError, match="a message of conversation"):
            await client.send_message(conv, "hello")
        found = await client.send_message(conv, "hello", reconcile=True)
    assert found.conversation_id == conv
    assert [m["content"] for m in server.messages(conv)] == ["hello"]
