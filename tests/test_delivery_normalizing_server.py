"""A server that stores a message's content normalized (trimmed, as a zod schema with
``.trim()`` does): its 201 names the message it stored, with other content.

That answer was taken for a lie, the conversation read back for the exact content sent,
not found, and the message sent again, up to ``max_retries`` times: six copies of one
input, reported as failed, and the rest of its conversation blocked.  Now the read-back
also knows the message by the id the 201 gave: found, it is this send's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime


@pytest.fixture
def trimming(fake_opentrain: FakeOpenTrain) -> Iterator[FakeOpenTrain]:
    """The fake server, storing every sent content with its outer whitespace removed."""
    world = fake_opentrain.world
    send = world.send

    def trimmed(account: Any, conversation_id: str, content: str) -> dict[str, Any]:
        return send(account, conversation_id, content.strip())

    world.send = trimmed  # type: ignore[method-assign]
    yield fake_opentrain
    world.send = send  # type: ignore[method-assign]


async def test_a_trimmed_message_in_bulk_is_delivered_once(
    trimming: FakeOpenTrain, opentrain_client: OpenTrainClient
) -> None:
    conv = trimming.add_conversation()
    report = await opentrain_client.send_all([(conv, "hello \n"), (conv, "next")])
    assert [m["content"] for m in trimming.messages(conv)] == ["hello", "next"]
    assert (report.sent, report.failed) == (2, 0)


async def test_a_trimmed_message_sent_alone_is_found_by_its_id(
    trimming: FakeOpenTrain, opentrain_client: OpenTrainClient, fake_time: FakeTime
) -> None:
    conv = trimming.add_conversation()
    message = await opentrain_client.send_message(conv, "  hi there  ", reconcile=True)
    stored = trimming.messages(conv)
    assert [m["content"] for m in stored] == ["hi there"]
    assert message.id == stored[0]["id"]
    # The same content again is a new message, not the first one claimed twice.
    again = await opentrain_client.send_message(conv, "  hi there  ", reconcile=True)
    assert again.id != message.id
    assert len(trimming.messages(conv)) == 2
    assert fake_time.elapsed < 1  # no resend waited for


async def test_a_trimmed_reply_is_sent_once(
    trimming: FakeOpenTrain, opentrain_client: OpenTrainClient
) -> None:
    """A bot's answer ending in a newline: six copies and an exception before."""
    conv = trimming.add_conversation()
    trimming.add_incoming_message(conv, "hello bot")
    page = await opentrain_client.read_messages(conv)
    incoming = next(m for m in page.messages if not m.is_from_viewer)
    answer = await opentrain_client.reply(incoming, "thanks!\n")
    assert answer.content == "thanks!"
    assert [m["content"] for m in trimming.messages(conv)] == ["hello bot", "thanks!"]
