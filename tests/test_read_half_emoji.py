"""A message holding half an emoji (a lone surrogate, ``"\\ud83d"`` in the JSON, as
JavaScript's ``JSON.stringify`` writes text that a client cut by UTF-16 units) is valid
JSON.  With orjson installed (the ``[speed]`` extra) the SDK refused the whole page as
"a body that is not JSON": the conversation could not be read or read back, and
``listen()`` raised on it before moving its position, so the bot stopped there on
every restart and handled nothing after it.  The stdlib parser (no orjson) read it.
A journal holding a key with half an emoji was refused as corrupt the same way.
Now orjson's refusals are parsed again by the stdlib: the same data either way.
(Failed on main with orjson installed: UnexpectedResponseError.)
"""

from __future__ import annotations

from pathlib import Path

from opentrain_async import MemoryCursorStore, OpenTrainClient, parse_webhook_event
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli

HALF = "a cut emoji \ud83d"


async def test_a_message_with_half_an_emoji_is_read(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    conv = server.add_conversation()
    server.add_incoming_message(conv, HALF)
    page = await client.read_messages(conv)
    assert [m.content for m in page.messages] == [HALF]


async def test_listen_goes_past_a_message_with_half_an_emoji(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    cut = server.add_conversation()
    server.add_incoming_message(cut, HALF)
    later = server.add_conversation()
    server.add_incoming_message(later, "after it")
    store = MemoryCursorStore()
    got = [m.content async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert got == [HALF, "after it"]


async def test_a_journal_holding_a_key_with_half_an_emoji_resumes(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A key with a lone surrogate (``"\\ud83d"``) is journaled as written (UTF-8 with
    surrogates passed); with orjson the next run refused the journal as corrupt ("str
    is not valid UTF-8"), exit 2: the job could not resume.  (Failed on main.)"""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(f'{{"conversationId": "{conv}", "content": "hi", "key": "k\\ud83d"}}\n')
    first = await cli("bulk", str(job), server=server)
    assert first.code == 0, first.err
    again = await cli("bulk", str(job), server=server)
    assert again.code == 0, again.err
    assert server.stats()["sends"] == 1


def test_a_webhook_event_with_half_an_emoji_is_parsed() -> None:
    """A delivery whose event data quotes text cut mid-emoji was "not JSON" with orjson:
    answered 400, retried five times by OpenTrain, then lost.  (Failed on main.)"""
    body = (
        b'{"id": "1042", "type": "proposal.received", "apiVersion": "v1", "createdAt":'
        b' "2026-06-12T09:15:00.000Z", "resourceId": "p_1", "jobId": null,'
        b' "data": {"coverLetter": "I can start \\ud83d"}}'
    )
    event = parse_webhook_event(body)
    assert event.id == "1042"
    assert event.data["coverLetter"] == "I can start \ud83d"
