"""client.reply(): an incoming message is answered once, even when handled twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import (
    DeliveryUnknownError,
    InvalidRequestError,
    MemoryCursorStore,
    Message,
    OpenTrainClient,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


async def _incoming(client: OpenTrainClient, cid: str, message_id: str) -> Message:
    return next(iter([m async for m in client.iter_messages(cid) if m.id == message_id]))


async def test_reply_sends_once_and_finds_it_the_second_time(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The second reply() to the same message, from a fresh client, sends nothing."""
    cid = server.add_conversation()
    incoming = await _incoming(client, cid, server.add_incoming_message(cid, "hi")["id"])
    first = await client.reply(incoming, "hello")
    async with make_client(server) as restarted:
        again = await restarted.reply(incoming, "hello")
    assert again.id == first.id
    assert server.stats()["sends"] == 1


async def test_an_answer_to_an_earlier_message_is_not_taken_for_this_one(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """Two "hi" in one conversation, both in before the bot answers the first, and a
    restart between the two answers: the second "hi" still gets its own answer.  The
    first answer is stamped after the second "hi", so only its id tells it apart: the
    position listen() saves carries it (without it the second "hi" went unanswered)."""
    cid = server.add_conversation()
    first_hi = server.add_incoming_message(cid, "hi")["id"]
    second_hi = server.add_incoming_message(cid, "hi")["id"]
    store = tmp_path / "cursor.json"
    async with make_client(server) as bot:
        messages = bot.listen(store=store, start="beginning")
        message = await anext(messages)
        assert message.id == first_hi
        await bot.reply(message, "echo: hi")
        assert (await anext(messages)).id == second_hi  # the first is finished
        await messages.aclose()  # dies before answering the second
    async with (
        make_client(server) as restarted,
        restarted.listen(store=store, start="beginning", until_idle=True) as again,
    ):
        answered = [await restarted.reply(m, "echo: hi") async for m in again]
    assert len(answered) == 1
    own = [m for m in server.messages(cid) if m["isFromViewer"]]
    assert [m["content"] for m in own] == ["echo: hi", "echo: hi"]
    assert server.stats()["duplicates"] == 1  # the same text twice, on purpose


async def test_reply_refuses_the_accounts_own_message(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Answering our own message is a mistake, named, with nothing sent."""
    cid = server.add_conversation()
    mine = await client.send_message(cid, "hello")
    with pytest.raises(InvalidRequestError, match="own"):
        await client.reply(mine, "again")
    with pytest.raises(InvalidRequestError, match="Message"):
        await client.reply("msg_1", "again")  # type: ignore[arg-type]
    assert server.stats()["sends"] == 1


async def test_reply_that_cannot_check_does_not_send(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The conversation cannot be read back: unknown, not a blind send."""
    cid = server.add_conversation()
    incoming = await _incoming(client, cid, server.add_incoming_message(cid, "hi")["id"])
    server.script("GET /messages", status=403, error="Forbidden", times=None)
    with pytest.raises(DeliveryUnknownError):
        await client.reply(incoming, "hello")
    assert server.stats()["sends"] == 0


async def test_a_handler_retried_in_the_same_process_does_not_answer_twice(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A bot that restarts its loop after its handler raised (same client): the message
    comes back and its answer, sent by this very client, is found, not sent again."""
    cid = server.add_conversation()
    server.add_incoming_message(cid, "hi")
    store = MemoryCursorStore()
    failed = False

    async def loop() -> None:
        nonlocal failed
        async with client.listen(store=store, start="beginning", until_idle=True) as messages:
            async for message in messages:
                await client.reply(message, "echo: hi")
                if not failed:
                    failed = True
                    raise RuntimeError("the handler failed after answering")

    with pytest.raises(RuntimeError):
        await loop()
    await loop()
    assert server.stats()["sends"] == 1


async def test_asking_twice_for_the_same_answer_sends_one(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """One answer per incoming message and text: the second call returns the first."""
    cid = server.add_conversation()
    incoming = await _incoming(client, cid, server.add_incoming_message(cid, "hi")["id"])
    first = await client.reply(incoming, "hello")
    assert (await client.reply(incoming, "hello")).id == first.id
    assert (await client.reply(incoming, "and more")).id != first.id
    assert server.stats()["sends"] == 2
