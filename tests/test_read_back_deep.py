"""Read-back and listen bounded by time, not pages: busy conversations with 1,500 newer
messages, servers that stop making progress, a feed that was empty at the first start.
"Not found in what I read" must never mean "not delivered" (or "nothing to deliver")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opentrain_async import (
    DeliveryUnknownError,
    MemoryCursorStore,
    OpenTrainClient,
    SendOutcome,
)
from opentrain_async._delivery import ClaimedIds, find_own_message
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .cli_helpers import cli_env, journal_header, run_cli, write_jsonl

BUSY = 1500


def _flood(server: FakeOpenTrain, conv: str, n: int = BUSY) -> None:
    for i in range(n):
        server.add_incoming_message(conv, f"chatter {i}")


def _message_reads(server: FakeOpenTrain, conv: str) -> int:
    return len(
        [
            r
            for r in server.requests
            if r.method == "GET"
            and r.path.endswith("/messages")
            and r.query.get("conversationId") == conv
        ]
    )


async def _send_one(client: OpenTrainClient, conv: str, text: str) -> SendOutcome:
    [outcome] = [o async for o in client.send_many([(conv, text)], concurrency=1)]
    return outcome


async def test_read_back_finds_a_send_under_1500_newer_messages(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A send times out after the server committed it; 1,500 messages land before the
    read-back: the message is still found (reconciled), never sent twice."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=60)
    flooded: list[bool] = []

    def flood_once(seconds: float) -> None:
        if seconds == 1.0 and not flooded:  # the reconcile delay, before reading back
            flooded.append(True)
            _flood(server, conv)

    no_wait.on_sleep.append(flood_once)
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep, timeout=0.5
    ) as c:
        outcome = await _send_one(c, conv, "the broadcast")
    assert flooded
    assert outcome.ok
    assert outcome.reconciled
    ours = [m for m in server.messages(conv) if m["content"] == "the broadcast"]
    assert [m["id"] for m in ours] == [outcome.message.id if outcome.message else None]
    assert server.stats()["duplicates"] == 0
    assert _message_reads(server, conv) > 10  # deeper than the old 10-page cap


async def test_not_found_only_after_reading_back_past_the_attempt(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A send lost before commit, 1,500 newer messages in the conversation: the read-back
    goes all the way back before resending, and the message lands exactly once."""
    conv = server.add_conversation()
    _flood(server, conv)
    server.inject_fault(Fault.RESET_BEFORE_COMMIT, count=1)
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep
    ) as client:
        outcome = await _send_one(client, conv, "lost then resent")
    assert outcome.ok
    assert not outcome.reconciled
    assert [m["content"] for m in server.messages(conv)].count("lost then resent") == 1
    assert _message_reads(server, conv) >= BUSY // 100


async def test_a_server_that_stops_paging_makes_the_outcome_unknown(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """The server echoes the read-back cursor: the outcome is delivery_unknown, and the
    message is not resent on a guess."""
    conv = server.add_conversation()
    _flood(server, conv, 250)
    server.echo_cursor_bug = True
    server.inject_fault(Fault.RESET_BEFORE_COMMIT, count=1)
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep
    ) as client:
        outcome = await _send_one(client, conv, "maybe")
    assert outcome.kind == "delivery_unknown"
    assert "same cursor" in str(outcome.error)
    assert "maybe" not in [m["content"] for m in server.messages(conv)]


async def test_read_back_that_runs_out_of_time_is_unknown(server: FakeOpenTrain) -> None:
    """A read-back past its time budget says unknown, not 'not delivered'."""
    conv = server.add_conversation()
    _flood(server, conv, 350)
    ticks = iter(range(0, 10_000, 50))

    def clock() -> float:
        return float(next(ticks))

    cause = DeliveryUnknownError("unknown", cause=DeliveryUnknownError("x", cause=None))  # type: ignore[arg-type]
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(DeliveryUnknownError, match="within 120 s"):
            await find_own_message(
                client,
                conv,
                "absent",
                since=time.time() - 3600,
                claimed=ClaimedIds(),
                cause=cause,
                clock=clock,
            )


async def test_cli_resume_reconciles_under_1500_newer_messages(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A job killed mid-send, then 1,500 messages in that conversation before the rerun:
    the rerun finds the delivered message by read-back and does not send it again."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "weekly"}])
    started = time.time() - 5
    async with OpenTrainClient(server.token, server.base_url) as client:
        delivered = await client.send_message(conv, "weekly")  # the killed run's send
    _flood(server, conv)
    from opentrain_async._cli._journal import content_hash, identity

    digest = content_hash(conv, "weekly")
    journal = tmp_path / "job.journal"
    journal.write_text(
        journal_header(job, server)
        + json.dumps(
            {
                "event": "started",
                "id": identity(None, digest, 1),
                "line": 1,
                "conversationId": conv,
                "sha256": digest,
                "at": started,
            }
        )
        + "\n"
    )
    result = await run_cli(
        "bulk", str(job), "--journal", str(journal), "--json", env=cli_env(server, tmp_path)
    )
    assert result.code == 0, result.err
    assert (result.json()["reconciled"], result.json()["sent"]) == (1, 0)
    assert [m["id"] for m in server.messages(conv) if m["content"] == "weekly"] == [delivered.id]


# -- listen ---------------------------------------------------------------------------


class StopListening(Exception):
    """Raised from an injected sleep to end a listen loop."""


def _sleep_then(actions: dict[int, Callable[[], None]]) -> Callable[[float], object]:
    calls: list[float] = []

    async def sleep(seconds: float) -> None:
        calls.append(seconds)
        action = actions.get(len(calls))
        if action is not None:
            action()

    return sleep


def _stop() -> None:
    raise StopListening


async def test_listen_on_an_empty_feed_misses_nothing_after_a_restart(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    """First start on an empty feed, the bot goes down, messages arrive: the restarted
    bot gets them (the first start saved 'from the beginning', not nothing)."""
    store = tmp_path / "cursor.json"
    with pytest.raises(StopListening):
        async for _ in client.listen(store=store, sleep=_sleep_then({1: _stop})):
            pass
    assert store.exists()
    conv = server.add_conversation()
    server.add_incoming_message(conv, "while down")
    got = [m.content async for m in client.listen(store=store, until_idle=True)]
    assert got == ["while down"]


async def test_listen_finds_a_message_under_1500_newer_ones(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """An incoming message with 1,500 newer messages in its conversation is delivered,
    not skipped with a warning."""
    conv = server.add_conversation()
    first = server.add_incoming_message(conv, "the one that matters")
    _flood(server, conv)
    store = MemoryCursorStore()
    got: list[str] = []
    async for message in client.listen(store=store, start="beginning", until_idle=True):
        got.append(message.id)
        if len(got) == 1:
            break
    assert got == [first["id"]]


async def test_listen_retries_a_page_it_could_not_read_back_far_enough(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """When a conversation cannot be read back far enough (the server echoes its cursor),
    the cursor does not move past the message: the page is retried and, once the server
    behaves, the message is delivered."""
    conv = server.add_conversation()
    buried = server.add_incoming_message(conv, "buried")
    for i in range(250):  # the buried message is on the third page
        server.add_incoming_message(conv, f"newer {i}", sender_user_id=server.user_id)
    store = MemoryCursorStore()
    got: list[str] = []

    def heal() -> None:
        server.echo_cursor_bug = False

    server.echo_cursor_bug = True
    sleep = _sleep_then({1: heal, 3: _stop})

    async def run() -> None:
        async for message in client.listen(store=store, start="beginning", sleep=sleep):
            got.append(message.id)

    with pytest.raises(StopListening):
        await run()
    assert got == [buried["id"]]
    assert "retrying the page" in caplog.text


async def test_listen_until_idle_stops_before_a_message_it_could_not_look_up(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A cron-style run (until_idle) that cannot read a conversation back far enough
    returns without moving the cursor; the next run delivers the message."""
    conv = server.add_conversation()
    buried = server.add_incoming_message(conv, "buried")
    for i in range(250):
        server.add_incoming_message(conv, f"newer {i}", sender_user_id=server.user_id)
    store = MemoryCursorStore()
    server.echo_cursor_bug = True
    first = [m.id async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert first == []
    assert store.cursor is None
    server.echo_cursor_bug = False
    second = [m.id async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert second == [buried["id"]]
