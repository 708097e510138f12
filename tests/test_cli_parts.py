"""The bulk job's parts on their own: the plan (no network), the run (one client, the
input read once, read-back through the bulk engine) and the summary (from a
``BulkReport``)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import (
    BulkReport,
    ConflictError,
    DeliveryUnknownError,
    Message,
    OpenTrainClient,
    OutgoingMessage,
    PermissionDeniedError,
    SendOutcome,
)
from opentrain_async._cli import _input, _run
from opentrain_async._cli._input import InputError, JobSource
from opentrain_async._cli._job import JobOptions, execute
from opentrain_async._cli._journal import (
    FileJournalStore,
    InputIdentity,
    JournalError,
    content_hash,
    identity,
    load_journal,
    open_journal,
)
from opentrain_async._cli._plan import Action, dry_run, make_plan, refuse_changed
from opentrain_async._cli._summary import JobResult, print_summary, write_failures
from opentrain_async._config import Settings, api_root
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import Result, cli_env, run_cli, start_cli, write_jsonl
from .test_cli_journal import MemoryJournalStore


def _ident(conversation_id: str, content: str, key: str | None = None) -> str:
    return identity(key, content_hash(conversation_id, content), 0 if key else 1)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the plan opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
async def test_the_plan_of_an_edited_job_is_computed_without_the_network(
    tmp_path: Path,
) -> None:
    """An earlier run's journal against an edited input file: lines moved or given a key
    are the inputs they were (skipped as delivered), a new line is sent, a key whose
    content changed is refused, an earlier failure is skipped, a send a crash left open
    is read back first, and a bad line is bad; all from the file and the journal alone."""
    job = tmp_path / "job.jsonl"
    store = FileJournalStore(tmp_path / "job.journal")
    journal, _ = await open_journal(store, InputIdentity(str(job)))
    hello = _ident("conv_1", "hello")
    old = _ident("conv_2", "old text", "k-b")
    refused = _ident("conv_3", "refused")
    open_one = _ident("conv_4", "in flight")
    for line, (ident, conv, content) in enumerate(
        [
            (hello, "conv_1", "hello"),
            (old, "conv_2", "old text"),
            (refused, "conv_3", "refused"),
            (open_one, "conv_4", "in flight"),
        ],
        1,
    ):
        await journal.started(ident, line, conv, content_hash(conv, content), 1_760_000_000.0)
    await journal.ended_ok(hello, "msg_1", reconciled=False)
    await journal.ended_ok(old, "msg_2", reconciled=False)
    await journal.ended_failed(refused, kind="read_only_conversation", error="409 CONFLICT")
    await journal.aclose()
    write_jsonl(
        job,
        [
            {"conversationId": "conv_9", "content": "brand new"},
            {"conversationId": "conv_4", "content": "in flight"},
            {"conversationId": "conv_1", "content": "hello", "key": "k-a"},  # key added
            '{"conversationId": "conv_5", ',
            {"conversationId": "conv_2", "content": "new text", "key": "k-b"},
            {"conversationId": "conv_3", "content": "refused"},
        ],
    )
    source = JobSource(str(job))
    state = await load_journal(FileJournalStore(store.path, read_only=True))
    plan = make_plan(source, state, JobOptions())
    assert plan.inputs == 6
    assert list(plan.bad) == [4]
    assert plan.actions == {
        Action.SEND: 1,
        Action.RECONCILE: 1,
        Action.DONE: 1,
        Action.CHANGED: 1,
        Action.SKIP_FAILED: 1,
    }
    assert [i.line.number for i in plan.to_settle] == [2]
    assert [(i.line.number, i.message.key) for i in plan.changed] == [(5, "k-b")]
    assert [(f.line, f.reason, f.earlier) for f in plan.earlier_failures] == [
        (6, "read_only_conversation", True)
    ]
    assert [i.line.number for i in plan.sends({})] == [1]
    # Read-back found nothing for the open one: it is sent too, in file order.
    assert [i.line.number for i in plan.sends({open_one: Action.SEND})] == [1, 2]
    with pytest.raises(JournalError, match=r"'k-b' \(line 5\)"):
        refuse_changed(plan, "job.journal")
    out = io.StringIO()
    options = JobOptions(journal=store.path, json=True)
    assert await dry_run(source, options, out, io.StringIO()) == 2
    printed = json.loads(out.getvalue())
    assert printed == plan.as_json(str(store.path))
    assert (printed["wouldSend"], printed["wouldReconcile"]) == (1, 1)
    assert (printed["alreadyDelivered"], printed["previouslyFailed"]) == (1, 1)


class EditingStore(MemoryJournalStore):
    """A journal that replaces the job file right after the first ``started`` record:
    someone editing the input while the job runs."""

    def __init__(self, job: Path, replacement: str) -> None:
        super().__init__()
        self.job = job
        self.replacement = replacement
        self.edited = False

    async def append(self, records: Sequence[Mapping[str, object]]) -> None:
        await super().append(records)
        if not self.edited and any(r.get("event") == "started" for r in records):
            self.edited = True
            edited = self.job.with_suffix(".new")
            edited.write_text(self.replacement, encoding="utf-8")
            os.replace(edited, self.job)


async def test_a_job_file_edited_while_it_runs_changes_nothing_about_the_run(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The job is read once: replaced after the first send started, the run still sends
    exactly the inputs it planned (each once, none of the new file's), and --failures
    writes the failed line as it was read, not whatever that line number holds now."""
    conv = server.add_conversation()
    closed = server.add_conversation(send_block="read_only_conversation")
    job = write_jsonl(
        tmp_path / "job.jsonl",
        [
            {"conversationId": conv, "content": "m1"},
            {"conversationId": conv, "content": "m2"},
            {"conversationId": closed, "content": "blocked", "note": "row three"},
            {"conversationId": conv, "content": "m4"},
        ],
    )
    replacement = "".join(
        json.dumps({"conversationId": conv, "content": f"x{i}"}) + "\n" for i in range(5)
    )
    store = EditingStore(job, replacement)
    options = JobOptions(concurrency=1, journal_store=store)
    settings = Settings(server.token, api_root(server.base_url), "test")
    source = JobSource(str(job))
    result = await execute(source, options, settings, err=io.StringIO())
    assert store.edited
    assert (result.inputs, result.sent, result.failed_total) == (4, 3, 1)
    assert sorted(m["content"] for m in server.messages(conv)) == ["m1", "m2", "m4"]
    failures = tmp_path / "failures.jsonl"
    assert write_failures(failures, source, result) == 1
    [row] = [json.loads(line) for line in failures.read_text().splitlines()]
    assert row["content"] == "blocked"
    assert row["note"] == "row three"
    assert (row["opentrain"]["line"], row["opentrain"]["reason"]) == (
        3,
        "read_only_conversation",
    )


def _message(ident: str) -> Message:
    return Message(id=ident, conversation_id="conv_1", created_at=datetime.now(timezone.utc))


def _outcome(index: int, message: Message | None = None, error: Any = None) -> SendOutcome:
    item = OutgoingMessage("conv_1", f"m{index}", key=f"k{index}")
    return SendOutcome(index, item, message, error, item.key, reconciled=index == 1)


def test_the_summary_is_rendered_from_a_bulk_report() -> None:
    """The table and --json come from the run's BulkReport plus the plan's figures: a
    reason the SDK does not know is counted under its own name, unknown outcomes apart,
    bad lines as invalid, and every input is accounted for once."""
    report = BulkReport(keep_failures=0)
    new_reason = PermissionDeniedError(
        "Forbidden", status=403, code="FORBIDDEN", details={"reason": "brand_new_reason"}
    )
    read_only = ConflictError(
        "Blocked", status=409, code="CONFLICT", details={"reason": "read_only_conversation"}
    )
    for outcome in [
        _outcome(0, _message("msg_0")),
        _outcome(1, _message("msg_1")),  # found by read-back
        _outcome(2, error=new_reason),
        _outcome(3, error=read_only),
        _outcome(4, error=DeliveryUnknownError("timed out")),
    ]:
        report.add(outcome)
    report.elapsed = 2.0
    assert report.counts["forbidden"] == 1  # the SDK's kind for an unknown 403 reason...
    assert report.by_reason["brand_new_reason"] == 1  # ...and the server's own word
    result = JobResult(
        report=report, inputs=7, bad_lines=[(7, "invalid JSON")], skipped_delivered=1
    )
    figures = result.as_json()
    assert (figures["sent"], figures["reconciled"], figures["delivered"]) == (1, 1, 3)
    assert figures["failedByReason"] == {
        "brand_new_reason": 1,
        "invalid": 1,
        "read_only_conversation": 1,
    }
    assert (figures["failed"], figures["unknown"]) == (3, 1)
    accounted = figures["delivered"] + figures["failed"] + figures["unknown"]
    assert accounted + figures["skipped"]["failed"] == figures["inputs"]
    assert figures["ratePerSecond"] == 1.0  # two delivered in two seconds
    assert figures["exitCode"] == 1
    out = io.StringIO()
    print_summary(result, JobOptions(), out, io.StringIO())
    table = out.getvalue()
    assert "brand_new_reason" in table
    assert "outcome was unknown; found by read-back" in table


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({}, 0),
        ({"interrupted": 15}, 143),
        ({"stopped": "the API token was rejected"}, 3),
        ({"inputs": 3}, 1),
    ],
)
def test_the_exit_code_follows_from_the_result(changes: dict[str, Any], code: int) -> None:
    """0 when every input is delivered; 128+signal when interrupted; 3 when the run
    stopped before delivering anything; 1 otherwise."""
    report = BulkReport()
    if "stopped" not in changes:
        report.add(_outcome(0, _message("msg_0")))
    result = JobResult(report=report, inputs=changes.pop("inputs", report.sent), **changes)
    assert result.exit_code() == code


class CountingClient(OpenTrainClient):
    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        CountingClient.built += 1
        super().__init__(*args, **kwargs)


async def test_one_client_serves_the_check_the_read_back_and_the_sends(
    server: FakeOpenTrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rerun that checks the token, reads back a send left open and sends the rest
    builds one client; the summary's requests are the run's, not the pre-send check's."""
    monkeypatch.setattr(_run, "OpenTrainClient", CountingClient)
    monkeypatch.setattr(CountingClient, "built", 0)
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(4)]
    )
    store = MemoryJournalStore()
    options = JobOptions(concurrency=2, journal_store=store, settle=0.0)
    settings = Settings(server.token, api_root(server.base_url), "test")
    await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert CountingClient.built == 1
    last_ended = max(i for i, r in enumerate(store.records) if r.get("event") == "ended")
    del store.records[last_ended]  # a crash before its ended record
    job.write_text(job.read_text() + json.dumps({"conversationId": conv, "content": "m4"}) + "\n")
    before = server.stats()["requests"]
    second = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert CountingClient.built == 2
    assert (second.reconciled, second.sent, second.skipped_delivered) == (1, 1, 3)
    preflight = 2  # GET /auth/me and GET /capabilities
    assert second.requests == server.stats()["requests"] - before - preflight
    assert len(server.messages(conv)) == 5


async def test_a_read_back_that_breaks_leaves_the_input_unknown_never_failed(
    server: FakeOpenTrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong reading back a send an earlier run left open, its outcome
    stays unknown (journaled so: the next run reads it back again), never a final
    failure a rerun would skip, and never a resend."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(3)]
    )
    store = MemoryJournalStore()
    options = JobOptions(concurrency=2, journal_store=store, settle=0.0)
    settings = Settings(server.token, api_root(server.base_url), "test")
    await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    last_ended = max(i for i, r in enumerate(store.records) if r.get("event") == "ended")
    left_open = store.records.pop(last_ended)["id"]

    async def broken(*args: object, **kwargs: object) -> Message | None:
        raise RuntimeError("a bug in read-back")

    with monkeypatch.context() as patch:
        patch.setattr(OpenTrainClient, "find_own_message", broken)
        second = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert (second.unknown, second.sent, second.failed_total) == (1, 0, 0)
    [failure] = second.failures
    assert failure.reason == "delivery_unknown"
    assert "a bug in read-back" in failure.error
    ended = [r for r in store.records if r.get("event") == "ended" and r["id"] == left_open]
    assert ended[-1]["kind"] == "delivery_unknown"
    third = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert (third.reconciled, third.sent) == (1, 0)
    assert len(server.messages(conv)) == 3


@pytest.mark.process
async def test_a_signal_during_read_back_stops_at_once_and_the_rerun_settles(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """SIGTERM while the engine reads back a send an earlier run left open (reads only,
    nothing to wait for): exit 143 at once with the summary, nothing sent, the input
    still open in the journal; the rerun finds it delivered and sends nothing twice."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(3)]
    )
    journal = tmp_path / "job.journal"
    env = cli_env(server, tmp_path)
    args = ("bulk", str(job), "--journal", str(journal), "--json")
    assert (await run_cli(*args, env=env)).code == 0
    records = journal.read_text().splitlines(keepends=True)
    last_ended = max(i for i, r in enumerate(records) if json.loads(r).get("event") == "ended")
    left_open = json.loads(records.pop(last_ended))["id"]
    journal.write_text("".join(records))  # as if killed before writing it
    server.script("GET /messages", delay=60, times=None)  # read-back hangs
    proc = await start_cli(*args, env=env)
    assert proc.stderr is not None
    note = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert note.startswith(b"journal "), note  # where it records, printed at start
    note = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert note.startswith(b"reconciling 1 send(s)"), note
    deadline = time.monotonic() + 30
    while server.in_flight == 0:  # after the note, only read-back goes to the server
        assert time.monotonic() < deadline, "the CLI never read back"
        assert proc.returncode is None, "the CLI ended before reading back"
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    result = Result(proc.returncode or 0, out.decode(), note.decode() + err.decode())
    assert result.code == 143, result.err
    assert "Traceback" not in result.err
    summary = result.json()
    assert (summary["interrupted"], summary["sent"], summary["reconciled"]) == ("SIGTERM", 0, 0)
    state = await load_journal(FileJournalStore(journal, read_only=True))
    assert state.inputs[left_open].open
    server.clear_faults()
    final = await run_cli(*args, env=env)
    assert final.code == 0, final.err
    assert (final.json()["reconciled"], final.json()["sent"]) == (1, 0)
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (3, 0)


def test_the_job_is_read_once_and_every_pass_sees_the_same_lines(tmp_path: Path) -> None:
    """Iterating a job again after its file was replaced yields the lines first read."""
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "conv_1", "content": "a"}])
    source = JobSource(str(job))
    job.write_text(json.dumps({"conversationId": "conv_2", "content": "b"}) + "\n")
    for _ in range(2):
        assert [line.record for line in source.lines()] == [
            {"conversationId": "conv_1", "content": "a"}
        ]


def test_a_job_larger_than_memory_allows_is_copied_once_and_edits_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond ``SPILL_BYTES`` the job is a private mapped copy, not heap: the original
    rewritten in place (same size, so a shared mapping would see it) changes no pass,
    and two passes interleaved keep their own positions."""
    monkeypatch.setattr(_input, "SPILL_BYTES", 64)
    monkeypatch.setattr(_input, "_CHUNK", 16)
    rows = [{"conversationId": f"conv_{i}", "content": f"message {i:03}"} for i in range(200)]
    job = write_jsonl(tmp_path / "job.jsonl", rows)
    source = JobSource(str(job))
    assert not isinstance(source._data, bytes)  # spilled, not held in memory
    with open(job, "r+b") as handle:  # same length, other content
        handle.write(handle.read().replace(b"message", b"MESSAGE"))
    first, second = source.lines(), source.lines()
    together = [(a.record, b.record) for a, b in zip(first, second, strict=True)]
    assert [a for a, _ in together] == rows
    assert [b for _, b in together] == rows


def test_a_pipe_is_read_once_and_can_be_planned_and_sent(tmp_path: Path) -> None:
    """A named pipe (``<(cmd)``) can be read only once: its lines are kept, every pass
    sees all of them, and it is treated like stdin (no default journal)."""
    fifo = tmp_path / "job.fifo"
    os.mkfifo(fifo)
    lines = "".join(
        json.dumps({"conversationId": "conv_1", "content": f"m{i}"}) + "\n" for i in range(3)
    )

    def write() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write(lines)

    writer = threading.Thread(target=write)
    writer.start()
    source = JobSource(str(fifo))
    writer.join()
    assert source.is_stdin
    first = [line.message for line in source.lines()]
    assert len(first) == 3
    assert [line.message for line in source.lines()] == first


def test_text_that_is_not_utf8_is_one_input_error_wherever_it_is(tmp_path: Path) -> None:
    """Invalid UTF-8 in the first bytes fails when the job is opened; further in, on
    the pass that reaches it; a character cut at the format-detection boundary is fine."""
    head = tmp_path / "head.jsonl"
    head.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(InputError, match="not UTF-8 text"):
        JobSource(str(head))
    tail = tmp_path / "tail.jsonl"
    line = json.dumps({"conversationId": "conv_1", "content": "x" * 100}) + "\n"
    tail.write_bytes(line.encode() * 400 + b'{"content": "\xff"}\n')
    source = JobSource(str(tail))
    with pytest.raises(InputError, match="not UTF-8 text"):
        list(source.lines())
    cut = tmp_path / "cut.jsonl"
    record = json.dumps({"conversationId": "conv_1", "content": "é" * 9000}, ensure_ascii=False)
    cut.write_bytes(record.encode() + b"\n")
    assert len(cut.read_bytes()) > 16384
    [only] = JobSource(str(cut)).lines()
    assert only.message is not None
