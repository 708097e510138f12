"""listen() and a server whose message list lags its updates feed: the event for a
message arrives before GET /messages shows it.

The spec promises nothing either way, so a message missing from a conversation read
back to its end is waited for while nothing newer than its event is listed there, for
``LIST_LAG`` seconds (virtual here), then taken as gone.  Before, it was taken as gone at
once: skipped for good, never handed to the bot ("misses nothing" broken; adv4).
"""

from __future__ import annotations

from typing import Any

from opentrain_async import MemoryCursorStore, OpenTrainClient
from opentrain_async._listen import LIST_LAG
from opentrain_async.testing import FakeOpenTrain, FakeTime


async def test_a_message_listed_after_its_event_is_still_handled(server: FakeOpenTrain) -> None:
    cid = server.add_conversation()
    server.add_incoming_message(cid, "listed late")
    conversation = server.conversation(cid)
    late = conversation.messages.pop()  # the event is in the feed, the list lags
    t = FakeTime()

    async def sleep(seconds: float) -> Any:
        if late not in conversation.messages:
            conversation.messages.append(late)  # the list catches up while listen waits
        await t.sleep(seconds)

    async with OpenTrainClient(server.token, server.base_url, clock=t.clock, sleep=sleep) as c:
        store = MemoryCursorStore()
        got = [m.content async for m in c.listen(store=store, start="beginning", until_idle=True)]
        assert got == ["listed late"]
        again = [m.content async for m in c.listen(store=store, until_idle=True)]
        assert again == []  # handled once: the position moved past it
    assert t.slept < LIST_LAG


async def test_a_message_never_listed_is_skipped_after_the_lag(server: FakeOpenTrain) -> None:
    """A deleted message in a quiet conversation holds the feed up ``LIST_LAG`` seconds,
    then the messages after it come, and a second run starts past it."""
    quiet, busy = server.add_conversation(), server.add_conversation()
    server.add_incoming_message(quiet, "deleted")
    server.conversation(quiet).messages.pop()
    server.add_incoming_message(busy, "after it")
    t = FakeTime()
    async with OpenTrainClient(server.token, server.base_url, clock=t.clock, sleep=t.sleep) as c:
        store = MemoryCursorStore()
        got = [m.content async for m in c.listen(store=store, start="beginning", until_idle=True)]
        assert got == ["after it"]
        assert LIST_LAG <= t.slept <= 2 * LIST_LAG
        slept = t.slept
        again = [m.content async for m in c.listen(store=store, until_idle=True)]
    assert again == []
    assert t.slept == slept  # the second run waited for nothing


async def test_a_missing_message_with_newer_ones_listed_is_skipped_at_once(
    server: FakeOpenTrain, client: OpenTrainClient, no_wait: FakeTime
) -> None:
    """The list shows a message newer than the event: it has caught up, so the missing
    one is gone, with no wait."""
    cid = server.add_conversation()
    server.add_incoming_message(cid, "deleted")
    server.conversation(cid).messages.pop()
    server.add_incoming_message(cid, "newer")
    got = [m.content async for m in client.listen(start="beginning", until_idle=True)]
    assert got == ["newer"]
    assert no_wait.slept == 0
