"""SIGINT and SIGTERM on a real ``bulk`` subprocess: what systemd, Kubernetes, ``timeout``
and Ctrl-C send.  The run stops starting sends, lets those on the wire finish and be
journaled, prints the summary and how to resume, and exits 130/143; a rerun delivers
the rest exactly once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from opentrain_async._cli._input import JobSource
from opentrain_async._cli._job import default_journal_path
from opentrain_async._cli._journal import FileJournalStore, load_journal
from opentrain_async.testing import FakeOpenTrain, Fault

from .cli_helpers import Result, cli_env, run_cli, start_cli, until_committed, write_jsonl
from .waiting import until


async def _finish(proc: asyncio.subprocess.Process, timeout: float = 30) -> Result:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.mark.parametrize(
    ("signum", "code", "explicit"),
    [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)],
    ids=["SIGTERM --journal", "SIGINT default journal"],
)
@pytest.mark.process
async def test_signal_stops_gracefully_and_a_rerun_finishes_exactly_once(
    tmp_path: Path, signum: signal.Signals, code: int, explicit: bool
) -> None:
    """A signal mid-run (with --journal, or with no journal option at all): exit 128+N
    with the summary and how to resume; every send that was on the wire ended in the
    journal (none left open); the rerun sends the rest, and the server holds each
    message exactly once."""
    n = 120
    async with FakeOpenTrain(record_requests=False, latency=0.05) as server:
        convs = [server.add_conversation() for _ in range(4)]
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": convs[i % 4], "content": f"shift {i}"} for i in range(n)],
        )
        env = cli_env(server, tmp_path)
        if explicit:
            journal = tmp_path / "job.journal"
            args: tuple[str, ...] = ("bulk", str(job), "--journal", str(journal))
        else:
            journal = default_journal_path(JobSource(str(job)), env)
            args = ("bulk", str(job))
        args += ("--concurrency", "8", "--json")
        proc = await start_cli(*args, env=env)
        await until_committed(server, 20, proc)
        proc.send_signal(signum)
        result = await _finish(proc)
        assert result.code == code, result.err
        assert "Traceback" not in result.err
        assert f"interrupted by {signum.name}" in result.err
        assert "rerun the same command to resume" in result.err
        summary = result.json()
        assert summary["journal"] == str(journal)
        assert summary["interrupted"] == signum.name
        assert summary["exitCode"] == code
        assert summary["notStarted"] > 0
        committed = server.stats()["committed"]
        assert committed < n
        assert summary["sent"] == committed  # every send that landed was journaled
        state = await load_journal(FileJournalStore(journal))
        assert not [i for i, p in state.inputs.items() if p.open], "sends left open"
        final = await run_cli(*args, env=env)
        assert final.code == 0, final.err
        assert final.json()["reconciled"] == 0
        assert final.json()["sent"] == n - committed
        stats = server.stats()
        assert (stats["committed"], stats["duplicates"]) == (n, 0)


@pytest.mark.process
async def test_second_signal_stops_at_once(tmp_path: Path) -> None:
    """Sends stalled on the server: the first SIGTERM waits (grace), the second one
    stops at once, still with a summary and exit 143; the stalled sends stay open in
    the journal for the next run to read back."""
    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": conv, "content": f"m {i}"} for i in range(10)],
        )
        journal = tmp_path / "job.journal"
        server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=60)  # every send stalls
        args = ("bulk", str(job), "--journal", str(journal), "--concurrency", "2", "--json")
        env = cli_env(server, tmp_path)
        # --unordered: two sends of the one conversation on the wire at once
        proc = await start_cli(*args, "--unordered", "--grace", "120", env=env)
        deadline = time.monotonic() + 30
        while server.in_flight < 2:  # preflight done, two sends on the wire
            assert time.monotonic() < deadline
            assert proc.returncode is None
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line.startswith(b"journal "), line  # where it records, printed at start
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"waiting up to 120 s" in line
        proc.send_signal(signal.SIGTERM)
        result = await _finish(proc, timeout=30)
        assert result.code == 143
        assert json.loads(result.out)["interrupted"] == "SIGTERM"
        state = await load_journal(FileJournalStore(journal))
        assert len([p for p in state.inputs.values() if p.open]) == 2
        server.clear_faults()
        final = await run_cli(*args, env=env)
        assert final.code == 0, final.err
        assert (final.json()["reconciled"], final.json()["sent"]) == (2, 8)
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (10, 0)


@pytest.mark.process
async def test_ctrl_c_while_following_messages_mentions_no_journal(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """messages --follow only reads: Ctrl-C ends it without talk of journals."""
    conv = server.add_conversation()
    proc = await start_cli(
        "messages", conv, "--follow", "--interval", "0.05", env=cli_env(server, tmp_path)
    )
    await until(lambda: any(r.path.endswith("/messages") for r in server.requests), "a read")
    proc.send_signal(signal.SIGINT)
    result = await _finish(proc)
    assert result.code == 130
    assert "journal" not in result.err
    assert "Traceback" not in result.err
