"""A ``before_send`` hook that raises ``CancelledError`` (it awaited a future someone
cancelled) is that input's outcome, as any other exception of the hook is.  Before, it
ended the worker instead: the input got no outcome at all, the stream ended one short
without a word, and the job went on with one worker fewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async.journal import FileJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime


def _cancelled_on(bad: str) -> Any:
    async def before_send(item: Any) -> None:
        if item[1] == bad:
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future  # the hook's own CancelledError, not a cancel of the send

    return before_send


async def _all(stream: AsyncIterator[SendOutcome]) -> list[SendOutcome]:
    return [outcome async for outcome in stream]


async def test_send_many_gives_the_input_its_outcome() -> None:
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        items = [(c, f"notice {i}") for i, c in enumerate(convs)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            stream = client.send_many(items, concurrency=2, before_send=_cancelled_on("notice 1"))
            seen = await asyncio.wait_for(_all(stream), 10)
        assert sorted(o.index for o in seen) == list(range(6))
        (failed,) = [o for o in seen if not o.ok]
        assert failed.index == 1
        assert "before_send raised CancelledError" in str(failed.error)
        assert len(server.sends) == 5
        assert server.messages(convs[1]) == []


async def test_the_stream_keeps_input_order_around_it() -> None:
    """One worker: the outcome comes in its turn, and the worker goes on after it."""
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(4)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            stream = client.send_many(items, concurrency=1, before_send=_cancelled_on("notice 2"))
            kinds = [o.kind for o in await asyncio.wait_for(_all(stream), 10)]
        assert kinds == ["sent", "sent", "error", "blocked_by_earlier_failure"]


async def test_a_cancelled_send_all_still_stops_in_its_journal_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of it: ``send_all(journal=)`` cancelled while its workers wait in
    the journal's hook (a slow disk under the "started" record) stops, and sends
    nothing: a worker's cancel is not taken for a hook that raised."""
    entered, go = asyncio.Event(), asyncio.Event()
    real = FileJournalStore.append

    async def slow(self: Any, records: Sequence[Any]) -> None:
        if any(r.get("event") == "started" for r in records):
            entered.set()
            await go.wait()
        await real(self, records)

    monkeypatch.setattr(FileJournalStore, "append", slow)
    clock = FakeTime()
    told: list[SendOutcome] = []
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(4)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            task = asyncio.create_task(
                client.send_all(
                    [(c, "notice") for c in convs],
                    concurrency=4,
                    journal=tmp_path / "j",
                    on_outcome=told.append,
                )
            )
            await asyncio.wait_for(entered.wait(), 5)
            task.cancel()
            go.set()  # the slow write ends
            done, _ = await asyncio.wait([task], timeout=5)
            assert done
            assert task.cancelled()
            await asyncio.sleep(0)
            assert client.in_flight == 0
        assert server.sends == []
        assert told == []  # no input was told "the hook raised": none was settled
