"""One time seam: the client's clock, sleep and wall clock reach every part that reads
time or waits."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._cli._input import JobSource
from opentrain_async._cli._job import JobOptions, execute
from opentrain_async._config import Settings, api_root
from opentrain_async._time import Clock
from opentrain_async.testing import FakeOpenTrain

from .test_cli_journal import MemoryJournalStore


class Stop(Exception):
    """Raised by the test's sleep to end an endless loop."""


async def test_listen_waits_through_the_client_s_sleep(server: FakeOpenTrain) -> None:
    """listen()'s idle backoff uses the sleep the client was built with (no real waiting),
    growing as documented."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise Stop

    async with OpenTrainClient(
        server.token, server.base_url, clock=lambda: sum(waits), sleep=sleep
    ) as client:
        with pytest.raises(Stop):
            async for _ in client.listen(store=None, idle_backoff=1.0, backoff_factor=2.0):
                pass  # pragma: no cover - the feed is empty
    assert waits == [1.0, 2.0, 4.0, 8.0]


class StepClock:
    """A fixed wall clock, a monotonic clock that moves only when slept, and a record of
    every sleep: a time seam for a whole CLI job."""

    def __init__(self, wall: float) -> None:
        self.now = 100.0
        self.wall_at = wall
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_at

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def seam(self) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep, wall=self.wall)


async def test_a_bulk_job_reads_time_only_through_its_clock(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The CLI job's journal stamps, its elapsed time and the settle wait before reading
    back an interrupted send all come from the job's Clock: a rerun that must settle
    waits (settle - time since the send started) on that clock, in no real time."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(
        "".join(json.dumps({"conversationId": conv, "content": f"m{i}"}) + "\n" for i in range(3))
    )
    store = MemoryJournalStore()
    frozen = time.time()  # the fake server stamps messages on the real clock
    clock = StepClock(wall=frozen)
    settings = Settings(server.token, api_root(server.base_url), "test")
    options = JobOptions(concurrency=2, journal_store=store, clock=clock.seam(), settle=1.0)
    first = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert first.sent == 3
    stamps = {r.get("at") for r in store.records}
    assert stamps == {frozen}
    assert first.elapsed == 0.0  # nothing slept: the job's clock did not move
    # An interrupted run: the last send was journaled as started, never as ended.
    last_ended = max(i for i, r in enumerate(store.records) if r.get("event") == "ended")
    del store.records[last_ended]
    clock.wall_at += 0.25  # the rerun comes a quarter of a second after that start
    second = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert second.reconciled == 1
    assert clock.sleeps[:1] == [pytest.approx(0.75)]
    assert second.elapsed == pytest.approx(sum(clock.sleeps))
    assert len(server.messages(conv)) == 3
