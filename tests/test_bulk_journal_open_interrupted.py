"""A ``send_all(journal=...)`` whose first record could not be written (the task was
cancelled there, by an arq job timeout or ``asyncio.timeout``; or the write failed) must
let the retried task run.  Before, the journal was left taken: a file's lock stayed
held by this process (every retry: ``JobBusyError`` "held by this process"), and a Redis
lease stayed renewed in the background, so no run of the job anywhere could start
until this process exited."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import JobJournalError, OpenTrainClient
from opentrain_async.journal import FileJournalStore, RedisJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .redis_server import RedisServer


def _journal(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[str, type]:
    if kind == "file":
        return str(tmp_path / "batch.journal"), FileJournalStore
    server: RedisServer = request.getfixturevalue("redis_server")
    return f"{server.url}?job=batch-7", RedisJournalStore


class _Disk:
    """The store's ``append`` held at the run's first record until ``go`` is set (a
    slow disk, a slow Redis), or failing there once."""

    def __init__(self, store: type, monkeypatch: pytest.MonkeyPatch, *, fail: bool) -> None:
        self.entered = asyncio.Event()
        self.go = asyncio.Event()
        real = store.append
        disk = self

        async def append(self: Any, records: Sequence[Any]) -> None:
            if not disk.entered.is_set() and any(r.get("event") == "run" for r in records):
                disk.entered.set()
                if fail:
                    raise OSError(28, "No space left on device")
                await disk.go.wait()
            await real(self, records)

        monkeypatch.setattr(store, "append", append)


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_a_task_cancelled_while_the_journal_opens_can_be_retried(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, store = _journal(kind, tmp_path, request)
    disk = _Disk(store, monkeypatch, fail=False)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(5)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            task = asyncio.create_task(client.send_all(items, journal=journal))
            await asyncio.wait_for(disk.entered.wait(), 5)
            task.cancel()
            disk.go.set()  # the write under way ends (a slow disk, not a dead one)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            report = await asyncio.wait_for(client.send_all(items, journal=journal), 5)
        assert (report.sent, report.failed) == (5, 0)
        assert len(server.messages(conv)) == 5
        assert server.stats()["duplicates"] == 0


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_a_run_whose_first_record_failed_can_be_retried(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, store = _journal(kind, tmp_path, request)
    _Disk(store, monkeypatch, fail=True)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(5)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            with pytest.raises(JobJournalError, match="No space left"):
                await client.send_all(items, journal=journal)
            assert server.sends == []
            report = await asyncio.wait_for(client.send_all(items, journal=journal), 5)
        assert (report.sent, report.failed) == (5, 0)
        assert server.stats()["duplicates"] == 0
