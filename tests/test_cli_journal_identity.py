"""A job is known by its content, not its path: whatever file a run of the same inputs
came from (a failures file fed back, a subset, a copy, a hard link), no journal lets
an input be sent twice, and two runs of the same content never run at once."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from opentrain_async._cli._content_lock import ContentLock
from opentrain_async._cli._input import JobSource
from opentrain_async._cli._journal import JournalError
from opentrain_async._cli._plan import JobInput, entries, job_fingerprint
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import Result, cli, cli_env, start_cli, until_committed, write_jsonl


def _records(conv: str, n: int, text: str = "notice") -> list[dict[str, str]]:
    return [{"conversationId": conv, "content": f"{text} {i}"} for i in range(n)]


async def _stopped_by_401(
    server: FakeOpenTrain, job: Path, failures: Path, n: int, *args: str
) -> Result:
    """A first run of ``job`` at ``--concurrency n`` whose ``n`` sends on the wire all
    answer 401: it stops, writing them to ``failures`` (failed, not final)."""
    server.fail_next(n, status=401)
    args = ("--concurrency", str(n), *args, "--failures", str(failures))
    first = await cli("bulk", str(job), *args, server=server)
    assert first.code in (1, 3), first.err
    server.clear_faults()
    return first


async def test_failures_fed_back_then_the_original_again_sends_nothing_twice(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A run stopped by a 401 leaves 4 failures (not final); feeding the failures file
    back delivers them; rerunning the original command used to send them again (304
    committed for 300 inputs).  Now the original's rerun sends only the rest."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 300))
    failures = tmp_path / "failures.jsonl"
    first = await _stopped_by_401(server, job, failures, 4, "--json")
    rows = [json.loads(x) for x in failures.read_text().splitlines()]
    assert rows
    assert all(r["opentrain"]["reason"] == "unauthorized" for r in rows), rows
    fed = await cli("bulk", str(failures), "--json", server=server)
    assert fed.code == 0, fed.err
    assert fed.json()["sent"] == len(rows)
    again = await cli("bulk", str(job), "--json", server=server)
    assert again.code == 0, again.err
    assert "were sent (or may have been) by the job of" in again.err
    assert again.json()["sent"] == 300 - len(rows) - first.json()["sent"]
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (300, 0)
    rerun = await cli("bulk", str(failures), "--json", server=server)
    assert (rerun.code, rerun.json()["sent"]) == (0, 0), rerun.err
    assert server.stats()["committed"] == 300


async def test_failures_fed_back_into_an_explicit_journal_are_that_job(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """With --journal, the failures file fed back with the same --journal is accepted
    as a part of that job (every input recorded there) and recorded in it; the
    original's rerun then sends nothing twice.  Another job's content is still refused."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 40))
    journal = tmp_path / "job.journal"
    failures = tmp_path / "failures.jsonl"
    await _stopped_by_401(server, job, failures, 3, "--journal", str(journal))
    args = ("--journal", str(journal), "--concurrency", "3")
    fed = await cli("bulk", str(failures), *args, "--json", server=server)
    assert fed.code == 0, fed.err
    assert "part of the job of" in fed.err
    again = await cli("bulk", str(job), *args, "--json", server=server)
    assert again.code == 0, again.err
    assert (server.stats()["committed"], server.stats()["duplicates"]) == (40, 0)
    other = write_jsonl(tmp_path / "other.jsonl", _records(conv, 2, "other"))
    refused = await cli("bulk", str(other), *args, server=server)
    assert refused.code == 2
    assert "holds other content" in refused.err


async def test_a_failed_second_copy_fed_back_keeps_its_identity(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The job sends one text twice on purpose; only the second copy fails (not
    final).  In the failures file it is the only copy, but it is still the second: fed
    back it is sent once, and the original's rerun sends no third copy."""
    conv = server.add_conversation()
    records = [{"conversationId": conv, "content": "same"}] * 2
    job = write_jsonl(tmp_path / "job.jsonl", records)
    failures = tmp_path / "failures.jsonl"
    first = await cli("bulk", str(job), "--concurrency", "1", server=server)
    assert first.code == 0, first.err
    # A journal where the second copy failed with a 401 (as a run stopped mid-way).
    source = JobSource(str(job))
    idents = [e.ident for e in entries(source) if isinstance(e, JobInput)]
    assert idents[0] != idents[1]
    row = {**records[1], "opentrain": {"line": 2, "reason": "UNAUTHORIZED", "id": idents[1]}}
    write_jsonl(failures, [row])
    fed = JobSource(str(failures))
    assert [e.ident for e in entries(fed) if isinstance(e, JobInput)] == [idents[1]]
    plain = write_jsonl(tmp_path / "plain.jsonl", [records[1]])
    assert [e.ident for e in entries(JobSource(str(plain))) if isinstance(e, JobInput)] == [
        idents[0]
    ]


def test_fingerprint_is_content_not_path_or_order(tmp_path: Path) -> None:
    records = _records("conv_1", 5)
    a = write_jsonl(tmp_path / "a.jsonl", records)
    b = write_jsonl(tmp_path / "b.jsonl", list(reversed(records)))
    c = write_jsonl(tmp_path / "c.jsonl", records[:4])
    fa, fb, fc = (job_fingerprint(JobSource(str(p))) for p in (a, b, c))
    assert fa == fb
    assert fa != fc


def test_content_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    with (
        ContentLock(tmp_path / "locks", "ab" * 32, "job.jsonl"),
        pytest.raises(JournalError, match="being sent by another run"),
        ContentLock(tmp_path / "locks", "ab" * 32, "other.jsonl"),
    ):
        pass
    with ContentLock(tmp_path / "locks", "ab" * 32, "again"):
        pass


@pytest.mark.process
async def test_one_job_file_under_two_paths_started_together_is_sent_once(
    tmp_path: Path,
) -> None:
    """A hard link: two paths, two default journals.  Two CLIs started together each
    passed the moved-file check and sent everything (600 committed for 300).  Now the
    content lock lets one run; the other is refused before sending anything."""
    n = 300
    async with FakeOpenTrain(latency=0.002) as server:
        conv = server.add_conversation()
        job = write_jsonl(tmp_path / "job.jsonl", _records(conv, n))
        link = tmp_path / "elsewhere" / "job.jsonl"
        link.parent.mkdir()
        os.link(job, link)
        env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
        procs = [
            await start_cli("bulk", str(path), "--concurrency", "4", env=env)
            for path in (job, link)
        ]
        results = await asyncio.gather(*(p.communicate() for p in procs))
        codes = sorted(p.returncode for p in procs)
        errs = [e.decode() for _, e in results]
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (n, 0), errs
        assert codes == [0, 2], errs  # one sent everything; the other was refused
        assert any("being sent by another run" in e or "already sent" in e for e in errs)
        assert all("Traceback" not in e for e in errs)


async def test_dry_run_plans_what_the_ledger_says(server: FakeOpenTrain, tmp_path: Path) -> None:
    """--dry-run of the original after its failures were fed back: would send only the
    rest, as the real run then does."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 20))
    failures = tmp_path / "failures.jsonl"
    await _stopped_by_401(server, job, failures, 2, "--json")
    assert (await cli("bulk", str(failures), server=server)).code == 0
    planned = await cli("bulk", str(job), "--dry-run", "--json", server=server)
    assert planned.code == 0, planned.err
    done = 20 - planned.json()["wouldSend"]
    real = await cli("bulk", str(job), "--json", server=server)
    assert (real.code, real.json()["sent"]) == (0, planned.json()["wouldSend"]), real.err
    assert real.json()["skipped"]["delivered"] == done
    assert (server.stats()["committed"], server.stats()["duplicates"]) == (20, 0)


@pytest.mark.process
async def test_a_job_sharing_inputs_with_a_running_one_is_refused(tmp_path: Path) -> None:
    """A job with its own journal, edited to share the lines of another job, started
    while that one runs: the running job's journal (locked by it) already shares
    inputs with it, so it is refused before sending; afterwards it sends only what the
    other did not."""
    n = 200
    async with FakeOpenTrain(latency=0.01) as server:
        conv = server.add_conversation()
        records = _records(conv, n)
        extra = {"conversationId": conv, "content": "one more"}
        state = {"XDG_STATE_HOME": str(tmp_path / "state")}
        copy = write_jsonl(tmp_path / "copy.jsonl", [extra])
        assert (await cli("bulk", str(copy), server=server, **state)).code == 0
        write_jsonl(copy, [extra, *records])  # now shares the other job's lines
        job = write_jsonl(tmp_path / "job.jsonl", records)
        env = cli_env(server, tmp_path, **state)
        original = await start_cli("bulk", str(job), "--concurrency", "1", env=env)
        await until_committed(server, 10, original)
        refused = await cli("bulk", str(copy), server=server, **state)
        assert refused.code == 2, refused.err
        assert "is running now and shares inputs" in refused.err
        await asyncio.wait_for(original.communicate(), 60)
        assert original.returncode == 0
        after = await cli("bulk", str(copy), "--json", server=server, **state)
        assert (after.code, after.json()["sent"]) == (0, 0), after.err
        assert after.json()["skipped"]["delivered"] == n + 1
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (n + 1, 0)
