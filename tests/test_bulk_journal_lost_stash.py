"""What a failed journal write leaves for a same-client retry (``journal._LOST``), in a
worker that runs many jobs one after another on one client (an arq or Celery worker).

The stash is the deliveries whose ``ended`` record the failed write lost, kept for the
retry of that journal.  It must be consumed by the next run on that journal, not kept
for the client's life: a job whose retry never comes (a worker that gives up) must not
leave it behind for ever, and a later job under the same journal name (the journal
removed after its job, the name used again next week) must not have its own open input
settled as "delivered" by another job's message.  (A journal *kept* and reused for
another job is a known limit: test_bulk_journal_reuse.py's xfail.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import JobJournalError, OpenTrainClient
from opentrain_async import journal as journal_module
from opentrain_async.journal import FileJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .waiting import until


def _failing_ended(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """While the flag is set, a write holding an ``ended`` record fails (a full disk)."""
    real = FileJournalStore.append
    failing = [True]

    async def append(self: Any, records: Sequence[Any]) -> None:
        if failing[0] and any("ok" in r for r in records):
            raise OSError(28, "No space left on device")
        await real(self, records)

    monkeypatch.setattr(FileJournalStore, "append", append)
    return failing


async def test_a_later_job_under_the_same_journal_name_is_not_settled_by_a_stale_stash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Week 1's reminder is delivered, its record lost, and the job is never retried
    (the worker removes the journal).  Week 2's same reminder under the same journal
    name fails with an unknown outcome (it never reached the server); its retry must
    read it back (not found) and send it, not take week 1's message for it."""
    failing = _failing_ended(monkeypatch)
    t = FakeTime()
    path = tmp_path / "weekly-reminder.journal"
    async with FakeOpenTrain(clock=t.clock, now=t.datetime) as server:
        conv = server.add_conversation()
        items = [(conv, "Reminder: timesheets close Friday")]
        client = OpenTrainClient(
            server.token, server.base_url, clock=t.clock, wall_clock=t.time, sleep=t.sleep
        )
        async with client:
            with pytest.raises(JobJournalError, match="No space left"):
                await asyncio.wait_for(client.send_all(items, journal=path), 5)
            assert len(server.messages(conv)) == 1
            failing[0] = False
            path.unlink()  # the job is done with; the name is reused next week
            t.now += timedelta(days=7).total_seconds()
            server.script("POST /messages", status=500, delay=30)  # stalls, never commits
            before = len(server.sends)
            week2 = asyncio.create_task(client.send_all(items, journal=path))
            await until(lambda: len(server.sends) > before, "the send on the wire")
            week2.cancel()  # the worker's job timeout
            with pytest.raises(asyncio.CancelledError):
                await week2
            server.clear_faults()
            retry = await asyncio.wait_for(client.send_all(items, journal=path), 5)
        assert [m["content"] for m in server.messages(conv)] == [items[0][1]] * 2, retry.counts


async def test_a_worker_that_never_retries_keeps_no_stash_per_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many jobs on one client, each with a journal of its own, each losing a record to
    a failed write and never retried: what the client keeps for retries stays bounded."""
    _failing_ended(monkeypatch)
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock, now=t.datetime) as server:
        conv = server.add_conversation()
        client = OpenTrainClient(
            server.token, server.base_url, clock=t.clock, wall_clock=t.time, sleep=t.sleep
        )
        async with client:
            for job in range(300):
                with pytest.raises(JobJournalError, match="No space left"):
                    await asyncio.wait_for(
                        client.send_all([(conv, f"job {job}")], journal=tmp_path / f"{job}.j"),
                        5,
                    )
            kept = journal_module._LOST.get(client, {})
            assert len(kept) <= 64, len(kept)  # journal._LOST_JOURNALS
