"""One position, one listener: ``listen()`` holds its cursor file (an ``flock`` on
``<file>.lock``) from its first load until it ends, however it ends.

Was: nothing held it.  A second ``listen()`` on the same file, in this process or
another, ran at once beside the first and was handed the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opentrain_async import (
    ConfigurationError,
    JSONFileCursorStore,
    MemoryCursorStore,
    OpenTrainClient,
    OpenTrainError,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .listen_kit import WAIT, SaysWaiting


async def _first_message(client: OpenTrainClient, store: object, **options: object) -> str:
    """Start a listener on ``store``, take one message, leave it finished."""
    async with client.listen(store=store, start="beginning", **options) as messages:  # type: ignore[arg-type]
        async for message in messages:
            return message.content
    raise AssertionError("the listener ended without a message")  # pragma: no cover


def _at_once(path: Path) -> JSONFileCursorStore:
    """The cursor file, held at once or not at all (``lock_timeout=0``)."""
    return JSONFileCursorStore(path, lock_timeout=0)


@contextlib.asynccontextmanager
async def _holding(client: OpenTrainClient, store: object) -> AsyncIterator[asyncio.Task[None]]:
    """A listener that holds ``store``: it has a message in hand until the block ends."""
    has = asyncio.Event()
    done = asyncio.Event()

    async def listener() -> None:
        async with client.listen(store=store, start="beginning") as messages:  # type: ignore[arg-type]
            async for _ in messages:
                has.set()
                await done.wait()
                break

    task = asyncio.ensure_future(listener())
    await asyncio.wait_for(has.wait(), WAIT)
    try:
        yield task
    finally:
        done.set()
        await asyncio.wait_for(task, WAIT)


# -- what holds it and for how long ----------------------------------------------------------


async def test_a_second_listener_in_the_same_process_is_kept_out(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path, no_wait: FakeTime
) -> None:
    """Two opens of one lock file in one process exclude each other (flock is per open
    file description): the second listen() waits, here at most lock_timeout=5 virtual
    seconds, then a ConfigurationError naming the file.  Was: both ran."""
    conv = server.add_conversation()
    for text in ("hi", "next"):
        server.add_incoming_message(conv, text)
    cursor = tmp_path / "cursor.json"
    async with _holding(client, cursor):
        with pytest.raises(ConfigurationError, match="still in use by another listener") as info:
            await asyncio.wait_for(_first_message(client, cursor, lock_timeout=5), WAIT)
    assert str(cursor) in str(info.value)
    assert f"pid {os.getpid()}" in str(info.value)  # who holds it, for the operator
    assert isinstance(info.value, OpenTrainError)
    assert 5 <= no_wait.elapsed < 6  # waited the client's (fake) time, polling
    assert await _first_message(client, _at_once(cursor)) == "next"  # released: at once


@pytest.mark.parametrize("how", ["finished", "raised", "cancelled"])
async def test_the_lock_goes_with_the_listener(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path, how: str
) -> None:
    """However the listener ends (left normally, its loop raised, its task cancelled), a
    third listen() on the file starts at once (lock_timeout=0)."""
    conv = server.add_conversation()
    for text in ("one", "two"):
        server.add_incoming_message(conv, text)
    cursor = tmp_path / "cursor.json"
    has = asyncio.Event()

    async def bot() -> None:
        async with client.listen(store=cursor, start="beginning") as messages:
            async for _ in messages:
                has.set()
                if how == "raised":
                    raise LookupError("the handler failed")
                if how == "cancelled":
                    await asyncio.Event().wait()
                break

    task = asyncio.ensure_future(bot())
    await asyncio.wait_for(has.wait(), WAIT)
    if how == "cancelled":
        task.cancel()
    with contextlib.suppress(LookupError, asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    expected = "two" if how == "finished" else "one"  # only a finished message is saved
    assert await _first_message(client, _at_once(cursor)) == expected


async def test_a_waiting_listener_stops_when_cancelled(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path, says_waiting: SaysWaiting
) -> None:
    """A listener waiting for the file is cancelled: it ends at once and holds nothing
    (the next one, once the first is gone, starts at once)."""
    conv = server.add_conversation()
    for text in ("hi", "next"):
        server.add_incoming_message(conv, text)
    cursor = tmp_path / "cursor.json"
    async with _holding(client, cursor):
        waiting = asyncio.ensure_future(_first_message(client, cursor))
        await says_waiting.first(waiting)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, WAIT)
    assert await _first_message(client, _at_once(cursor)) == "next"


async def test_the_waiting_listener_goes_on_when_the_first_stops(
    server: FakeOpenTrain,
    client: OpenTrainClient,
    tmp_path: Path,
    says_waiting: SaysWaiting,
) -> None:
    """No timeout: the second listener waits as long as the first runs, saying so once,
    then starts from the position the first saved."""
    conv = server.add_conversation()
    server.add_incoming_message(conv, "first")
    cursor = tmp_path / "cursor.json"
    async with _holding(client, cursor):
        second = asyncio.ensure_future(_first_message(client, cursor))
        await says_waiting.first(second)
        server.add_incoming_message(conv, "second")
    assert await asyncio.wait_for(second, WAIT) == "second"
    assert len(says_waiting.lines) == 1  # once, not once per try
    assert str(cursor) in says_waiting.lines[0]
    assert server.token not in says_waiting.lines[0]


async def test_a_memory_store_holds_one_listener_too(
    server: FakeOpenTrain, client: OpenTrainClient, says_waiting: SaysWaiting
) -> None:
    """Two listen()s on one MemoryCursorStore object (a loop restarted in the same
    process before the old one ended): the second waits for the first."""
    conv = server.add_conversation()
    server.add_incoming_message(conv, "first")
    store = MemoryCursorStore()
    async with _holding(client, store):
        second = asyncio.ensure_future(_first_message(client, store))
        await says_waiting.first(second)
        server.add_incoming_message(conv, "second")
    assert await asyncio.wait_for(second, WAIT) == "second"


# -- custom stores and options -----------------------------------------------------------


class _HeldStore(MemoryCursorStore):
    """A store of one's own with a ``hold()``: records when listen() enters and leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def hold(self) -> contextlib.AbstractAsyncContextManager[None]:  # type: ignore[override]
        @contextlib.asynccontextmanager
        async def held() -> AsyncIterator[None]:
            self.calls.append("enter")
            yield
            self.calls.append("exit")

        return held()

    async def load(self) -> str | None:
        self.calls.append("load")
        return await super().load()


class _Plain:
    """A store of one's own as before: load() and save(), no hold()."""

    def __init__(self) -> None:
        self.saved: str | None = None

    async def load(self) -> str | None:
        return self.saved

    async def save(self, cursor: str) -> None:
        self.saved = cursor


async def test_a_custom_store_hold_is_entered_around_the_listener(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """hold() is entered before the first load and left at the end; a store without one
    (load and save only) still works, holding nothing."""
    server.add_incoming_message(server.add_conversation(), "hi")
    store = _HeldStore()
    assert await _first_message(client, store) == "hi"
    assert store.calls == ["enter", "load", "exit"]
    plain = _Plain()
    assert await _first_message(client, plain) == "hi"
    assert plain.saved is not None


async def test_a_hold_that_is_no_context_manager_is_a_configuration_error(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    class Odd(MemoryCursorStore):
        hold = 5  # type: ignore[assignment]

    server.add_incoming_message(server.add_conversation(), "hi")
    with pytest.raises(ConfigurationError, match=r"Odd\.hold\(\) must return"):
        await asyncio.wait_for(_first_message(client, Odd()), WAIT)


@pytest.mark.parametrize("bad", [-1, "5", float("nan")])
async def test_a_bad_lock_timeout_is_refused(client: OpenTrainClient, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        client.listen(store="cursor.json", lock_timeout=bad)  # type: ignore[arg-type]


async def test_lock_timeout_with_a_store_object_is_refused(client: OpenTrainClient) -> None:
    """It would be ignored: the store's own lock_timeout= is the place for it."""
    with pytest.raises(ConfigurationError, match=r"lock_timeout= is for the cursor file"):
        client.listen(store=MemoryCursorStore(), lock_timeout=5)
