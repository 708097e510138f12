"""send_all/send_many with journal=: a retried task sends nothing twice, a crash's open
sends are read back, a second concurrent run is refused with a typed error."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from opentrain_async import (
    JobBusyError,
    JobJournalError,
    OpenTrainClient,
    OpenTrainError,
    OutgoingMessage,
)
from opentrain_async._cli._journal import content_hash, identity
from opentrain_async.journal import FileJournalStore, RedisJournalStore, open_store
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .cli_helpers import ROOT, cli_env, until_committed, write_jsonl
from .conftest import make_client
from .redis_server import RedisServer
from .waiting import until


def _items(conv: str, n: int) -> list[tuple[str, str]]:
    return [(conv, f"notice {i}") for i in range(n)]


async def test_a_rerun_sends_nothing_twice(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """The same send_all run twice on one journal: the second sends nothing and still
    reports every input delivered, with the ids of the first run."""
    conv = server.add_conversation()
    journal = tmp_path / "batch.journal"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        first = await client.send_all(_items(conv, 20), journal=str(journal))
        sends = server.stats()["sends"]
        ids = sorted(m["id"] for m in server.messages(conv))
        seen: list[str] = []
        second = await client.send_all(
            _items(conv, 20),
            journal=journal,
            on_outcome=lambda o: seen.append(o.message.id if o.message else "-"),
        )
    assert (first.sent, second.sent) == (20, 20)
    assert server.stats()["sends"] == sends
    assert sorted(seen) == ids
    assert server.stats()["duplicates"] == 0


async def test_send_many_with_a_journal_adds_only_what_is_new(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """send_many(journal=): a grown batch sends only its new inputs."""
    conv = server.add_conversation()
    journal = str(tmp_path / "j")
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        assert all([o.ok async for o in client.send_many(_items(conv, 5), journal=journal)])
        outcomes = [o async for o in client.send_many(_items(conv, 8), journal=journal)]
    assert len(outcomes) == 8
    assert all(o.ok for o in outcomes)
    assert len(server.messages(conv)) == 8


async def test_a_send_left_open_by_a_crash_is_read_back_not_resent(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """The journal says a send started and never ended (the worker died): the retry
    finds the message by read-back and does not send it again."""
    conv = server.add_conversation()
    journal = tmp_path / "j.journal"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        await client.send_all([(conv, "warm-up")], journal=str(journal))  # the header
    async with make_client(server) as dead:
        delivered = await dead.send_message(conv, "ping")  # the dead run's send
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        digest = content_hash(conv, "ping")
        started = {
            "event": "started",
            "id": identity(None, digest, 1),
            "line": 2,
            "conversationId": conv,
            "sha256": digest,
            "at": time.time() - 5,
        }
        with journal.open("a") as f:
            f.write(json.dumps(started) + "\n")
        report = await client.send_all([(conv, "warm-up"), (conv, "ping")], journal=str(journal))
    assert (report.sent, report.reconciled) == (2, 1)
    assert [m["id"] for m in server.messages(conv)][-1] == delivered.id
    assert len(server.messages(conv)) == 2


async def test_a_second_concurrent_run_is_refused(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """While one run holds the journal, another of the same job raises JobBusyError (an
    OpenTrainError) and sends nothing."""
    conv = server.add_conversation()
    server.script("POST /messages", delay=0.3, times=1)
    journal = str(tmp_path / "j.journal")
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        first = asyncio.ensure_future(client.send_all(_items(conv, 3), journal=journal))
        await until(lambda: server.in_flight > 0, "the first run's send")
        with pytest.raises(JobBusyError) as caught:
            await client.send_all(_items(conv, 3), journal=journal)
        assert isinstance(caught.value, OpenTrainError)
        assert (await first).sent == 3
    assert len(server.messages(conv)) == 3


async def test_a_second_run_on_a_redis_journal_is_refused(
    server: FakeOpenTrain, no_wait: FakeTime, redis_server: RedisServer
) -> None:
    """journal="redis://...?job=NAME": the lease refuses a concurrent run of the same
    job (JobBusyError, no password in it); a rerun afterwards sends nothing twice."""
    conv = server.add_conversation()
    server.script("POST /messages", delay=0.3, times=1)
    url = f"{redis_server.url}?job=batch7"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        first = asyncio.ensure_future(client.send_all(_items(conv, 3), journal=url))
        await until(lambda: server.in_flight > 0, "the first run's send")
        with pytest.raises(JobBusyError):
            await client.send_all(_items(conv, 3), journal=url)
        assert (await first).sent == 3
        again = await client.send_all(_items(conv, 3), journal=url)
    assert again.sent == 3
    assert len(server.messages(conv)) == 3


def test_journal_specs_are_checked(tmp_path: Path) -> None:
    """A path, a Redis URL or a store; anything else (or a bad URL) is a JobJournalError
    naming what is accepted, with no password in it."""
    assert isinstance(open_store(str(tmp_path / "j")), FileJournalStore)
    assert isinstance(open_store("redis://localhost:6379/0?job=x"), RedisJournalStore)
    with pytest.raises(JobJournalError, match="takes a path"):
        open_store(42)
    with pytest.raises(JobJournalError) as caught:
        open_store("redis://user:s3cret@localhost:6379/0")  # no ?job=
    assert "s3cret" not in str(caught.value)


async def test_a_journal_that_is_not_ours_is_refused(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    """A file that is not a journal: JobJournalError, the file untouched, nothing sent."""
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    with pytest.raises(JobJournalError, match="not a journal"):
        await client.send_all([OutgoingMessage(server.add_conversation(), "x")], journal=other)
    assert other.read_text() == "my notes\n"
    assert server.stats()["sends"] == 0


@pytest.mark.process
async def test_an_arq_style_task_killed_and_retried_commits_each_message_once(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """examples/arq_worker.py's task in a real process, killed with SIGKILL mid-job while
    answers are held back (messages committed, outcomes unknown), then retried as arq
    would: every message is committed exactly once."""
    conversations = [server.add_conversation() for _ in range(10)]
    items = [
        {"conversationId": c, "content": f"part {k} of 4"}
        for c in conversations
        for k in range(1, 5)
    ]
    job = write_jsonl(tmp_path / "items.jsonl", items)
    env = cli_env(server, tmp_path, OT_JOURNAL=str(tmp_path / "journals"))
    server.script("POST /messages", delay=0.1, times=None, after_commit=True)
    command = [sys.executable, str(ROOT / "examples" / "arq_worker.py"), "batch-7", str(job)]
    worker = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        await until_committed(server, 12, worker)
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    assert server.stats()["committed"] < 40
    server.clear_faults()
    retry = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(retry.communicate(), 60)
    assert retry.returncode == 0, err.decode()
    assert json.loads(out) == {"total": 40, "sent": 40, "failed": 0}
    stats = server.stats()
    assert (stats["committed"], stats["distinct"], stats["duplicates"]) == (40, 40, 0)
    for conv in conversations:
        assert [m["content"] for m in server.messages(conv)] == [
            f"part {k} of 4" for k in range(1, 5)
        ]


async def test_a_key_sent_before_with_other_content_is_refused_not_resent(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """A retried task whose keyed input changed content: that input is refused (invalid,
    field "key"), the others go on; nothing is sent twice."""
    conv, other = server.add_conversation(), server.add_conversation()
    journal = tmp_path / "j.journal"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        await client.send_all([OutgoingMessage(conv, "v1", key="k")], journal=journal)
        report = await client.send_all(
            [OutgoingMessage(conv, "v2", key="k"), OutgoingMessage(other, "hi", key="k2")],
            journal=journal,
        )
    assert (report.sent, report.counts["invalid"]) == (1, 1)
    assert report.failures[0].error.field == "key"  # type: ignore[union-attr]
    assert [m["content"] for m in server.messages(conv)] == ["v1"]
