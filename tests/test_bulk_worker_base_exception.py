"""A hook or a send that raises a ``BaseException`` which is neither an ``Exception``
(that is the input's outcome) nor a cancel (a library's own "abort" class, say) ended
its worker silently: the input got no outcome, ``send_all`` returned a report one input
short (``total`` 5 of 6) and ``send_many``'s stream just ended one short, the exception
lost.  Now everything stops and the caller gets that exception, with the journal
released for the job's next run."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async.journal import FileJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime


class Abort(BaseException):
    """Not an Exception, not a cancel."""


def _abort_on(bad: str) -> Any:
    async def before_send(item: Any) -> None:
        if item[1] == bad:
            raise Abort

    return before_send


async def test_send_many_raises_it_instead_of_ending_one_short() -> None:
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        items = [(c, f"notice {i}") for i, c in enumerate(convs)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            seen: list[SendOutcome] = []

            async def loop() -> None:
                # notice 3, not 1: by then both workers' connections are open (an abort
                # while the second is being accepted leaves the fake server's socket to a
                # race in aiohttp's shutdown: a ResourceWarning on 3.12+, not ours)
                async for outcome in client.send_many(
                    items, concurrency=2, before_send=_abort_on("notice 3")
                ):
                    seen.append(outcome)

            with pytest.raises(Abort):
                await asyncio.wait_for(loop(), 5)
            assert 3 not in [o.index for o in seen]


async def test_send_all_raises_it_and_releases_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FileJournalStore.append
    aborting = [True]

    async def append(self: Any, records: Sequence[Any]) -> None:
        if aborting[0] and any(r.get("line") == 1 for r in records):
            raise Abort  # under input #1's "started" record
        await real(self, records)

    monkeypatch.setattr(FileJournalStore, "append", append)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        items = [(c, f"notice {i}") for i, c in enumerate(convs)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            with pytest.raises(Abort):
                await asyncio.wait_for(
                    client.send_all(items, concurrency=2, journal=tmp_path / "j"), 5
                )
            aborting[0] = False
            report = await asyncio.wait_for(
                client.send_all(items, concurrency=2, journal=tmp_path / "j"), 5
            )  # the job runs again: the first run let its journal go
        assert report.total == 6
        assert report.sent == 6
        assert sorted(m["content"] for c in convs for m in server.messages(c)) == sorted(
            content for _, content in items
        )


async def test_a_loop_left_before_seeing_it_gets_it_at_aclose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop body was busy when the worker died and then left (``break``): the
    ``async with`` ending raises it, and the journal is let go."""
    real = FileJournalStore.append
    aborted = asyncio.Event()
    aborting = [True]

    async def append(self: Any, records: Sequence[Any]) -> None:
        if aborting[0] and any(r.get("line") == 2 for r in records):  # input #1
            aborted.set()
            raise Abort
        await real(self, records)

    monkeypatch.setattr(FileJournalStore, "append", append)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(3)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:

            async def loop() -> None:
                async with client.send_many(items, concurrency=1, journal=tmp_path / "j") as s:
                    async for _ in s:
                        await asyncio.wait_for(aborted.wait(), 5)
                        for _ in range(5):
                            await asyncio.sleep(0)  # the worker has stopped everything
                        break

            with pytest.raises(Abort):
                await loop()
        aborting[0] = False
        async with OpenTrainClient(  # the job's next run (a new client: see
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:  # tests/test_bulk_journal_retry_same_client.py)
            report = await asyncio.wait_for(
                client.send_all(items, concurrency=1, journal=tmp_path / "j"), 5
            )
        assert report.sent == 3
        assert len(server.messages(conv)) == 3
