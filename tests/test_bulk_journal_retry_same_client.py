"""A job retried in the same process with the same client (an arq or Celery worker
sharing one client: the retry after a run whose journal write failed, a disk full): an input the
first run delivered, whose "ended" record never reached the journal (it is written
after the send, not awaited), is open in the journal, so the retry reads it back
first.  But read-back skips the ids this client already claimed, and this client
claimed that very message when it sent it: it was not found and sent again, two copies
(adv13).  The run now keeps the deliveries whose records the failed write lost, for this
client's retry (``journal._LOST``); a new client (a new process) finds it by read-back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.journal import FileJournalStore, RedisJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime


def _fail_the_second_start(monkeypatch: pytest.MonkeyPatch, kind: Any) -> list[bool]:
    """``kind``'s writes fail ("disk full") while the returned flag holds, for the batch
    holding input #1's ``started`` record, and so input #0's ``ended`` record with it."""
    real = kind.append
    failing = [True]

    async def append(self: Any, records: Sequence[Any]) -> None:
        if failing[0] and any(r.get("line") == 2 for r in records):
            raise OSError(28, "No space left on device")
        await real(self, records)

    monkeypatch.setattr(kind, "append", append)
    return failing


@pytest.mark.parametrize("store", ["file", "redis"])
@pytest.mark.parametrize("same_client", [True, False])
async def test_a_retry_after_a_failed_journal_write_sends_nothing_twice(
    same_client: bool,
    store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """A failed write (a full disk, a Redis blip), then the task retried."""
    kind: Any = FileJournalStore
    journal: Any = tmp_path / "j"
    if store == "redis":
        kind = RedisJournalStore
        journal = f"{request.getfixturevalue('redis_server').url}?job=retry-{same_client}"
    failing = _fail_the_second_start(monkeypatch, kind)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(3)]
        first = OpenTrainClient(server.token, server.base_url, clock=clock.clock, sleep=clock.sleep)
        async with first:
            report = await asyncio.wait_for(
                first.send_all(items, concurrency=1, journal=journal), 5
            )
            assert report.counts["sent"] == 1  # then the disk filled: input #0 left open
            failing[0] = False
            retry = (
                first
                if same_client
                else OpenTrainClient(
                    server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
                )
            )
            async with retry:
                report = await asyncio.wait_for(
                    retry.send_all(items, concurrency=1, journal=journal), 5
                )
        assert report.total == 3
        assert sorted(m["content"] for m in server.messages(conv)) == [
            content for _, content in items
        ]


async def test_a_retry_naming_the_journal_another_way_sends_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run names the journal by its absolute path, the retry by a relative
    one (a worker's cwd): the same file, so the same lost delivery (adv14)."""
    failing = _fail_the_second_start(monkeypatch, FileJournalStore)
    monkeypatch.chdir(tmp_path)
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(3)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            first = await client.send_all(items, concurrency=1, journal=tmp_path / "j")
            assert first.counts["sent"] == 1
            failing[0] = False
            report = await client.send_all(items, concurrency=1, journal="j")
        assert report.total == 3
        assert sorted(m["content"] for m in server.messages(conv)) == [c for _, c in items]
