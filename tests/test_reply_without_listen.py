"""``client.reply()`` used without ``listen()`` (a webhook-triggered bot fetching the
message itself), with one fixed answer text, in a process that restarted: the replies
it sent before are not in any saved log, so an earlier message's answer is taken for
this one's."""

from __future__ import annotations

import pytest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


@pytest.mark.xfail(
    strict=True,
    reason=(
        "reply() tells an answer to an earlier message apart only by the ReplyLog, which "
        "only listen() saves: a new process calling reply() on its own takes the answer "
        "to m1 (same text, stamped after m2) for m2's and sends nothing"
    ),
)
async def test_a_fixed_answer_text_answers_each_message_after_a_restart(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    conversation = server.add_conversation()
    ids = [server.add_incoming_message(conversation, text)["id"] for text in ("hi", "hello?")]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        found = {m.id: m async for m in client.iter_messages(conversation)}
    first, second = found[ids[0]], found[ids[1]]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as before:
        answer_1 = await before.reply(first, "Thanks, we will get back to you.")
    # The process died before it answered the second message; a new one does.
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as after:
        answer_2 = await after.reply(second, "Thanks, we will get back to you.")
    assert answer_2.id != answer_1.id
    assert len([m for m in server.messages(conversation) if m["isFromViewer"]]) == 2
