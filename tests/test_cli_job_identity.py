"""Exactly once across edits an operator makes between runs: keys added or removed, a job
file moved, renamed, converted or sent to another API, a failures file fed back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain, Fault

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl


def _records(conv: str, n: int, *, keys: bool = False) -> list[dict[str, str]]:
    return [
        {"conversationId": conv, "content": f"notice {i}", **({"key": f"n-{i}"} if keys else {})}
        for i in range(n)
    ]


async def test_adding_then_removing_keys_sends_nothing_again(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A delivered job without keys, then keys added to every line (the operator's fix
    for "identity by line"), then removed again: nothing is sent twice; a new keyed line
    with the text of a delivered one is still a new input."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 10))
    env = cli_env(server, tmp_path)
    assert (await run_cli("bulk", str(job), env=env)).code == 0
    keyed = _records(conv, 10, keys=True)
    write_jsonl(job, keyed)
    dry = await run_cli("bulk", str(job), "--dry-run", "--json", env=env)
    assert (dry.code, dry.json()["wouldSend"], dry.json()["alreadyDelivered"]) == (0, 0, 10)
    added = await run_cli("bulk", str(job), "--json", env=env)
    assert added.code == 0, added.err
    assert (added.json()["sent"], added.json()["skipped"]["delivered"]) == (0, 10)
    write_jsonl(job, [*_records(conv, 10), {**keyed[3], "key": "again"}])
    removed = await run_cli("bulk", str(job), "--json", env=env)
    assert removed.code == 0, removed.err
    assert (removed.json()["sent"], removed.json()["skipped"]["delivered"]) == (1, 10)
    assert server.stats()["sends"] == 11
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == sorted([f"notice {i}" for i in range(10)] + ["notice 3"])


async def test_moved_renamed_or_converted_job_file_is_not_sent_again(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The default journal is per path: a delivered job moved to another directory,
    renamed, or converted to CSV was a new job and sent everything again.  Now the run
    (and --dry-run) refuses, naming the journal that has them; resuming that journal
    with --reuse-journal sends nothing; an explicit new --journal is a new job."""
    conv = server.add_conversation()
    records = _records(conv, 10)
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--json", env=env)
    assert first.code == 0, first.err
    journal = first.json()["journal"]
    (tmp_path / "done").mkdir()
    moved = job.rename(tmp_path / "done" / "batch-7.jsonl")
    converted = tmp_path / "job.csv"
    with converted.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["conversationId", "content"])
        writer.writeheader()
        writer.writerows(records)
    for again in (moved, converted):
        for extra in ((), ("--dry-run",)):
            refused = await run_cli("bulk", str(again), *extra, env=env)
            assert refused.code == 2, refused.err
            assert_one_line_error(refused)
            assert "10 of these inputs were already sent (or may have been" in refused.err
            assert journal in refused.err
    assert server.stats()["sends"] == 10
    resumed = await run_cli(
        "bulk", str(moved), "--journal", journal, "--reuse-journal", "--json", env=env
    )
    assert resumed.code == 0, resumed.err
    assert (resumed.json()["sent"], resumed.json()["skipped"]["delivered"]) == (0, 10)
    fresh = await run_cli(
        "bulk", str(converted), "--journal", str(tmp_path / "new.journal"), "--json", env=env
    )
    assert (fresh.code, fresh.json()["sent"]) == (0, 10)
    assert server.stats()["sends"] == 20


async def test_a_moved_job_sent_to_another_api_is_its_own_job(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The moved-file check looks only at journals of the same API: the job delivered to
    staging, moved and run against production, is sent there (and a second run is not)."""
    conv = server.add_conversation("conv_shared")
    records = _records(conv, 5)
    job = write_jsonl(tmp_path / "job.jsonl", records)
    staging = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    assert staging.code == 0, staging.err
    moved = job.rename(tmp_path / "for-production.jsonl")
    async with FakeOpenTrain() as production:
        production.add_conversation("conv_shared")
        env = cli_env(production, tmp_path)
        sent = await run_cli("bulk", str(moved), "--json", env=env)
        assert sent.code == 0, sent.err
        assert sent.json()["sent"] == 5
        again = await run_cli("bulk", str(moved), "--json", env=env)
        assert (again.code, again.json()["sent"]) == (0, 0)
        assert production.stats()["sends"] == 5
    assert server.stats()["sends"] == 5


async def test_failures_file_fed_back_does_not_resend_an_unknown_outcome(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--failures lists unknown outcomes too, and the docs say to fix the rows and feed
    the file back: a new file, a new default journal, and the message that may well have
    been delivered was sent again.  Now that run refuses (exit 2) naming the journal; the
    refused row alone, fed back, is sent."""
    conv = server.add_conversation()
    hidden = server.add_conversation(readable=False)  # read-back cannot settle it
    records = [
        {"conversationId": hidden, "content": "maybe delivered"},
        {"conversationId": "conv_9999", "content": "wrong conversation"},
        {"conversationId": conv, "content": "fine"},
    ]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    server.inject_fault(Fault.RESET_AFTER_COMMIT, count=1)
    failed = tmp_path / "failed.jsonl"
    first = await run_cli(
        "bulk", str(job), "--concurrency", "1", "--failures", str(failed), "--json", env=env
    )
    assert first.code == 1, first.err
    assert (first.json()["unknown"], first.json()["failedByReason"]) == (1, {"not_found": 1})
    rows = [json.loads(line) for line in failed.read_text().splitlines()]
    assert sorted(r["opentrain"]["reason"] for r in rows) == ["delivery_unknown", "not_found"]
    fed = await run_cli("bulk", str(failed), env=env)
    assert fed.code == 2, fed.err
    assert_one_line_error(fed)
    assert "1 of these inputs were already sent (or may have been" in fed.err
    assert len(server.messages(hidden)) == 1
    fixed = [{**r, "conversationId": conv} for r in rows if r["opentrain"]["reason"] == "not_found"]
    write_jsonl(failed, fixed)
    fixed = await run_cli("bulk", str(failed), "--json", env=env)
    assert (fixed.code, fixed.json()["sent"]) == (0, 1), fixed.err
    assert len(server.messages(hidden)) == 1
