"""A rolling restart where the new bot starts before the old one has finished: two
``listen()`` loops on one cursor file, each in its own client.

It was: both were handed the same new message, each ``reply()`` read the conversation
back, found no answer yet (the other's was not sent) and sent one: the message was
answered twice.  Now the cursor file is held by one listener at a time
(``_listen_lock``): the new bot waits, saying so once, until the old one stops, then goes
on from the position the old one saved and answers what comes next.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .conftest import make_client
from .listen_kit import WAIT, SaysWaiting


async def test_two_bots_on_one_cursor_file_answer_a_message_once(
    server: FakeOpenTrain, tmp_path: Path, says_waiting: SaysWaiting
) -> None:
    """The old bot holds "hi" when the new one starts.  Was: the new bot was handed "hi"
    too and both answered it (2 answers).  Now the new one waits, then answers "next"."""
    conv = server.add_conversation()
    cursor = tmp_path / "bot-cursor.json"
    holding: list[str] = []
    old_holds = asyncio.Event()
    both_in = asyncio.Event()  # the new bot is in too: waiting (now), or holding "hi" (was)

    async def bot(client: OpenTrainClient, name: str, last: str) -> list[str]:
        handled = []
        async with (
            client,
            client.listen(store=cursor, start="beginning", idle_backoff=0.01) as messages,
        ):
            async for message in messages:
                holding.append(name)
                old_holds.set()
                if len(holding) == 2:
                    both_in.set()
                await both_in.wait()  # the old bot still handling it while the new one starts
                await client.reply(message, f"echo: {message.content}")
                handled.append(message.content)
                if message.content == last:
                    break
        return handled

    old = asyncio.ensure_future(bot(make_client(server), "old", "hi"))
    server.add_incoming_message(conv, "hi")
    await asyncio.wait_for(old_holds.wait(), WAIT)
    new = asyncio.ensure_future(bot(make_client(server), "new", "next"))
    await asyncio.wait_for(_first(says_waiting.seen, both_in), WAIT)
    both_in.set()
    assert await asyncio.wait_for(old, WAIT) == ["hi"]
    server.add_incoming_message(conv, "next")
    assert await asyncio.wait_for(new, WAIT) == ["next"]
    answers = [m["content"] for m in server.messages(conv) if m["isFromViewer"]]
    assert answers == ["echo: hi", "echo: next"]
    assert len(says_waiting.lines) == 1
    assert str(cursor.resolve()) in says_waiting.lines[0]
    assert server.token not in says_waiting.lines[0]


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
