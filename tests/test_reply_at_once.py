"""``reply()`` asked twice at once for the same incoming message and text (a bot that
handles messages in tasks and meets one twice, a handler retried while its first run is
still under way, a ``with_options`` copy): one answer, both calls return it.  Before,
both read the conversation back before either sent, found nothing, and both sent."""

from __future__ import annotations

import asyncio

from opentrain_async import Message, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


async def _incoming(client: OpenTrainClient, server: FakeOpenTrain) -> Message:
    cid = server.add_conversation()
    message_id = server.add_incoming_message(cid, "hi")["id"]
    return next(iter([m async for m in client.iter_messages(cid) if m.id == message_id]))


async def test_two_replies_at_once_send_one_answer(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    incoming = await _incoming(client, server)
    first, second = await asyncio.gather(
        client.reply(incoming, "hello"), client.reply(incoming, "hello")
    )
    assert first.id == second.id
    assert server.stats()["sends"] == 1


async def test_a_copy_replying_at_once_sends_no_second_answer(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    incoming = await _incoming(client, server)
    answers = await asyncio.gather(
        client.reply(incoming, "hello"),
        client.with_options(timeout=5).reply(incoming, "hello"),
        client.with_options(max_retries=1).reply(incoming, "hello"),
    )
    assert len({a.id for a in answers}) == 1
    assert server.stats()["sends"] == 1


async def test_other_texts_and_messages_are_not_held_up(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The turn is per message and text: another text, or another message, is its own
    answer, and no turn is left behind."""
    incoming = await _incoming(client, server)
    other = await _incoming(client, server)
    answers = await asyncio.gather(
        client.reply(incoming, "hello"),
        client.reply(incoming, "and more"),
        client.reply(other, "hello"),
    )
    assert len({a.id for a in answers}) == 3
    assert server.stats()["sends"] == 3
    assert client._replies._turns == {}
