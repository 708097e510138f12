"""listen(): the bot loop over new incoming messages, its backoff and its cursor store."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from opentrain_async import (
    ConfigurationError,
    JSONFileCursorStore,
    MemoryCursorStore,
    Message,
    OpenTrainClient,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime


def scripted_time(actions: dict[int, Callable[[], None]] | None = None) -> FakeTime:
    """Fake time that runs a scripted action when the n-th sleep is requested."""
    time = FakeTime()
    steps = actions or {}

    def on_sleep(_: float) -> None:
        action = steps.get(len(time.sleeps))
        if action is not None:
            action()

    time.on_sleep.append(on_sleep)
    return time


class Stop(Exception):
    """Raised from an injected sleep to end a test's listen loop."""


def _stop() -> None:
    raise Stop


async def _take(client: OpenTrainClient, n: int, **options: object) -> list[Message]:
    got: list[Message] = []
    async for message in client.listen(**options):  # type: ignore[arg-type]
        got.append(message)
        if len(got) == n:
            break
    return got


async def _collect(messages: AsyncIterator[Message], into: list[str]) -> None:
    async for message in messages:
        into.append(message.content)


async def test_listen_yields_incoming_messages_only(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Only other people's messages come out: own messages and other events are skipped."""
    cid = server.add_conversation()
    first = server.add_incoming_message(cid, "hello")
    own = await client.send_message(cid, "my reply")
    server.add_event("message.received", {"conversationId": cid, "messageId": own.id})
    server.add_event("robot.danced", {"style": "waltz"})
    server.add_event("proposal.received", {"proposalId": "p1"})
    second = server.add_incoming_message(cid, "are you there?")
    got = [m async for m in client.listen(start="beginning", until_idle=True)]
    assert [m.id for m in got] == [first["id"], second["id"]]
    assert all(isinstance(m, Message) and not m.is_from_viewer for m in got)
    assert got[0].content == "hello"


async def test_listen_start_latest_skips_history(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """With no saved cursor, start='latest' skips what is already in the feed."""
    cid = server.add_conversation()
    for i in range(3):
        server.add_incoming_message(cid, f"old {i}")
    clock = scripted_time({1: lambda: server.add_incoming_message(cid, "new")})
    got = await _take(client, 1, sleep=clock.sleep, limit=2)
    assert [m.content for m in got] == ["new"]
    assert clock.sleeps == [1.0]


async def test_listen_idle_backoff_grows_and_resets(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Idle polls wait longer each time up to the cap, and activity resets the wait."""
    cid = server.add_conversation()
    clock = scripted_time(
        {
            4: lambda: server.add_incoming_message(cid, "wake up"),
            6: _stop,
        }
    )
    got: list[str] = []
    listen = client.listen(
        sleep=clock.sleep, idle_backoff=0.5, max_idle_backoff=3, backoff_factor=2
    )
    with pytest.raises(Stop):
        await _collect(listen, got)
    assert got == ["wake up"]
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0, 0.5, 0.5]


async def test_listen_drains_pages_without_waiting(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """While the feed has more (hasMore), listen fetches the next page at once."""
    cid = server.add_conversation()
    for i in range(5):
        server.add_incoming_message(cid, f"m{i}")
    clock = scripted_time()
    got = await _take(client, 5, start="beginning", limit=2, sleep=clock.sleep)
    assert [m.content for m in got] == [f"m{i}" for i in range(5)]
    assert clock.sleeps == []


async def test_listen_restart_neither_replays_nor_misses(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    """A restarted listen with the same cursor file gets exactly what arrived while down."""
    store = tmp_path / "state" / "cursor.json"
    cid = server.add_conversation()
    server.add_incoming_message(cid, "history")
    clock = scripted_time({1: lambda: server.add_incoming_message(cid, "during run 1"), 2: _stop})
    first: list[str] = []
    with pytest.raises(Stop):  # the bot is killed while idle
        await _collect(client.listen(store=store, sleep=clock.sleep), first)
    assert first == ["during run 1"]
    saved = json.loads(store.read_text())["cursor"]
    # the bot is down: messages keep arriving
    server.add_incoming_message(cid, "while down 1")
    server.add_incoming_message(server.add_conversation(), "while down 2")
    async with OpenTrainClient(server.token, server.base_url) as restarted:
        second = [m.content async for m in restarted.listen(store=store, until_idle=True)]
    assert second == ["while down 1", "while down 2"]
    assert json.loads(store.read_text())["cursor"] != saved


async def test_listen_bare_break_redelivers_only_the_message_in_hand(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Checkpoints are per message: after a bare ``break`` (no ``async with``) mid-page,
    the message in hand comes back, the one finished before it does not."""
    store = MemoryCursorStore()
    cid = server.add_conversation()
    a = server.add_incoming_message(cid, "a")
    b = server.add_incoming_message(cid, "b")
    c = server.add_incoming_message(cid, "c")
    first = await _take(client, 2, store=store, start="beginning")
    assert [m.id for m in first] == [a["id"], b["id"]]
    assert store.saves == 1  # a was finished when b was asked for
    again = [m.id async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert again == [b["id"], c["id"]]


async def test_listen_dedupes_repeated_announcements(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The same message announced twice (across pages) is yielded once per run."""
    cid = server.add_conversation()
    message = server.add_incoming_message(cid, "once")
    server.add_event("message.received", {"conversationId": cid, "messageId": message["id"]})
    server.add_event("message.received", {"conversationId": cid, "messageId": message["id"]})
    got = [m.id async for m in client.listen(start="beginning", limit=1, until_idle=True)]
    assert got == [message["id"]]


async def test_listen_skips_unresolvable_events(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Events without ids, or naming a message that cannot be found, are logged and skipped."""
    cid = server.add_conversation()
    server.add_event("message.received", {"conversationId": cid})
    server.add_event("message.received", {"conversationId": cid, "messageId": "msg_gone"})
    real = server.add_incoming_message(cid, "real")
    got = [m.id async for m in client.listen(start="beginning", until_idle=True)]
    assert got == [real["id"]]
    assert "without ids" in caplog.text
    assert "msg_gone" in caplog.text


async def test_listen_goes_past_malformed_events(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """One malformed event no longer stalls the bot for good: a bad optional field is
    kept as None, an unreadable record is skipped, both logged by id, never by content;
    the messages announced before and after are yielded, on this run and the next."""
    cid = server.add_conversation()
    before = server.add_incoming_message(cid, "before")
    bad_time = server.add_event("message.received", {"conversationId": cid})
    bad_time["createdAt"] = "not a time"
    bad_time["jobId"] = {"secret": "payload-text"}
    unreadable = server.add_event("message.received")
    unreadable["data"] = ["payload-text"]
    after = server.add_incoming_message(cid, "after")
    store = MemoryCursorStore()
    got = [m.id async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert got == [before["id"], after["id"]]
    later = server.add_incoming_message(cid, "later")
    again = [m.id async for m in client.listen(store=store, until_idle=True)]
    assert again == [later["id"]]
    assert f"event '{bad_time['id']}': createdAt, jobId did not parse" in caplog.text
    assert f"/updates event '{unreadable['id']}' skipped" in caplog.text
    assert "payload-text" not in caplog.text
    assert "not a time" not in caplog.text


async def test_listen_finds_messages_beyond_the_newest_page(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A message buried under 150 newer ones is still found by reading further back."""
    cid = server.add_conversation()
    old = server.add_incoming_message(cid, "buried")
    for i in range(150):
        server.add_incoming_message(cid, f"n{i}")
    got = await _take(client, 1, start="beginning")
    assert [m.id for m in got] == [old["id"]]


async def test_listen_does_not_spin_on_an_echoed_cursor(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A server that echoes the cursor makes listen back off, not busy-loop or duplicate."""
    cid = server.add_conversation()
    server.add_incoming_message(cid, "only once")
    store = MemoryCursorStore("1")
    server.echo_cursor_bug = True
    clock = scripted_time({4: _stop})
    got: list[str] = []
    with pytest.raises(Stop):
        await _collect(client.listen(store=store, sleep=clock.sleep), got)
    assert got == ["only once"]
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0]
    assert len([r for r in server.requests if r.path.endswith("/updates")]) == 4


# -- cursor stores -----------------------------------------------------------------------


async def test_json_store_round_trip(tmp_path: Path) -> None:
    """The JSON file store returns None at first, then the last saved cursor."""
    store = JSONFileCursorStore(tmp_path / "sub" / "cursor.json")
    assert await store.load() is None
    await store.save("1043")
    await store.save("1044")
    assert await store.load() == "1044"
    assert json.loads((tmp_path / "sub" / "cursor.json").read_text())["cursor"] == "1044"
    assert os.listdir(tmp_path / "sub") == ["cursor.json"]  # no temp files left behind
    assert "cursor.json" in repr(store)


@pytest.mark.parametrize("content", ["{not json", '{"cursor": 5}', '{"cursor": ""}'])
async def test_json_store_refuses_a_corrupt_file(tmp_path: Path, content: str) -> None:
    """An unreadable cursor file is a ConfigurationError, never a silent restart."""
    path = tmp_path / "cursor.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError):
        await JSONFileCursorStore(path).load()


async def test_json_store_unreadable_path(tmp_path: Path) -> None:
    """A cursor path that is a directory is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        await JSONFileCursorStore(tmp_path).load()


async def test_json_store_failed_write_keeps_the_old_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while saving leaves the previous cursor intact and no temp file; the
    caller meets a ConfigurationError naming the file (an OpenTrainError)."""
    store = JSONFileCursorStore(tmp_path / "cursor.json")
    await store.save("10")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ConfigurationError, match=r"cannot save the cursor file .*disk full"):
        await store.save("11")
    monkeypatch.undo()
    assert await store.load() == "10"
    assert os.listdir(tmp_path) == ["cursor.json"]


async def test_default_cursor_store_is_a_file_per_token(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """With no store given, the cursor persists in a JSON file under $XDG_STATE_HOME,
    named by a hash: a restarted bot resumes, and the token is not in the name."""
    conv = server.add_conversation()
    server.add_incoming_message(conv, "first")
    async with OpenTrainClient(server.token, server.base_url) as client:
        got = [m.content async for m in client.listen(start="beginning", until_idle=True)]
        path = client._default_cursor_path()
    assert got == ["first"]
    assert path.parent == tmp_path / "state" / "opentrain_async"
    assert path.exists()
    assert server.token not in path.name
    server.add_incoming_message(conv, "second")
    async with OpenTrainClient(server.token, server.base_url) as restarted:
        again = [m.content async for m in restarted.listen(until_idle=True)]
    assert again == ["second"]
