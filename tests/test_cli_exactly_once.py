"""Exactly once, the way operators break it: edited job files, reused keys, a journal
path that is not a journal, no --journal at all.  Every test runs the real CLI."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._cli._journal import content_hash, identity
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, journal_header, run_cli, write_jsonl


def _records(conv: str, n: int, prefix: str = "notice") -> list[dict[str, str]]:
    return [{"conversationId": conv, "content": f"{prefix} {i}"} for i in range(n)]


async def test_edited_job_file_sends_only_what_is_new(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A finished 40-line job, then a line inserted at the top, the rest shuffled, and the
    same command run again (default journal, no flag): only the new line is sent."""
    conv = server.add_conversation()
    records = _records(conv, 40)
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--json", env=env)
    assert first.code == 0, first.err
    assert first.json()["sent"] == 40
    assert first.json()["journal"] is not None
    edited = records[:]
    random.Random(7).shuffle(edited)
    edited.insert(0, {"conversationId": conv, "content": "a late addition"})
    write_jsonl(job, edited)
    dry = await run_cli("bulk", str(job), "--dry-run", "--json", env=env)
    assert dry.code == 0, dry.err
    assert (dry.json()["wouldSend"], dry.json()["alreadyDelivered"]) == (1, 40)
    again = await run_cli("bulk", str(job), "--json", env=env)
    assert again.code == 0, again.err
    summary = again.json()
    assert (summary["sent"], summary["skipped"]["delivered"]) == (1, 40)
    assert server.stats()["duplicates"] == 0
    contents = [m["content"] for m in server.messages(conv)]
    assert len(contents) == 41
    assert sorted(contents) == sorted(r["content"] for r in edited)


async def test_deleting_and_repeating_lines_keeps_count_of_identical_messages(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The same text twice to one conversation is two inputs; deleting an unrelated line
    changes nothing, and a third copy added later is sent once."""
    conv = server.add_conversation()
    records = [
        {"conversationId": conv, "content": "reminder"},
        {"conversationId": conv, "content": "other"},
        {"conversationId": conv, "content": "reminder"},
    ]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    assert (await run_cli("bulk", str(job), env=env)).code == 0
    write_jsonl(job, [records[0], records[2], {"conversationId": conv, "content": "reminder"}])
    again = await run_cli("bulk", str(job), "--json", env=env)
    assert again.code == 0, again.err
    assert again.json()["sent"] == 1
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == ["other", "reminder", "reminder", "reminder"]


@pytest.mark.slow  # waits a second or more of real time
async def test_dry_run_of_a_grown_file_counts_only_new_lines(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--dry-run on a delivered 1,000-line file with one line added: would send 1."""
    conv = server.add_conversation()
    records = _records(conv, 1000)
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--concurrency", "32", env=env)
    assert first.code == 0, first.err
    write_jsonl(job, [{"conversationId": conv, "content": "one more"}, *records])
    dry = await run_cli("bulk", str(job), "--dry-run", env=env)
    assert dry.code == 0, dry.err
    assert "would send 1," in dry.out
    assert "1,000 already delivered" in dry.out


async def test_key_reused_with_new_content_refuses_to_start(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A key delivered with other content: exit 2 naming key and line, nothing sent;
    --allow-changed sends the new content."""
    conv = server.add_conversation()
    records = [
        {"conversationId": conv, "content": f"invoice {i} is due", "key": f"inv-{i}"}
        for i in range(20)
    ]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    assert (await run_cli("bulk", str(job), env=env)).code == 0
    records[6] = {**records[6], "content": "invoice 6 is due (corrected amount)"}
    write_jsonl(job, records)
    sends = server.stats()["sends"]
    refused = await run_cli("bulk", str(job), env=env)
    assert refused.code == 2
    assert_one_line_error(refused)
    assert "'inv-6' (line 7)" in refused.err
    assert "--allow-changed" in refused.err
    assert server.stats()["sends"] == sends
    dry = await run_cli("bulk", str(job), "--dry-run", "--json", env=env)
    assert dry.code == 2
    assert dry.json()["changedKeys"] == [{"line": 7, "key": "inv-6"}]
    allowed = await run_cli("bulk", str(job), "--allow-changed", "--json", env=env)
    assert allowed.code == 0, allowed.err
    assert allowed.json()["sent"] == 1
    assert server.messages(conv)[-1]["content"] == "invoice 6 is due (corrected amount)"
    settled = await run_cli("bulk", str(job), "--json", env=env)
    assert (settled.code, settled.json()["sent"]) == (0, 0)


async def test_journal_pointed_at_the_job_file_leaves_it_intact(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--journal naming the job file itself (one line, no trailing newline) or notes.txt:
    exit 2, the file is unchanged, nothing sent."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": conv, "content": "only line"}))
    notes = tmp_path / "notes.txt"
    notes.write_text("call Ana about the rollout")
    env = cli_env(server, tmp_path)
    for target in (job, notes):
        before = target.read_bytes()
        result = await run_cli("bulk", str(job), "--journal", str(target), env=env)
        assert result.code == 2
        assert_one_line_error(result)
        assert "not a journal written by opentrain-async" in result.err
        assert target.read_bytes() == before
    assert server.stats()["sends"] == 0


async def test_journal_at_dev_zero_is_refused(server: FakeOpenTrain, tmp_path: Path) -> None:
    """--journal /dev/zero is refused at once (exit 2, one line), nothing sent."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 2))
    result = await run_cli(
        "bulk", str(job), "--journal", "/dev/zero", env=cli_env(server, tmp_path), timeout=30
    )
    assert result.code == 2
    assert_one_line_error(result)
    assert "not a regular file" in result.err
    assert server.stats()["sends"] == 0


async def test_no_journal_opts_out_and_stdin_says_it_cannot_resume(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--no-journal writes none (a rerun sends again); stdin without --journal says so."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 3))
    env = cli_env(server, tmp_path)
    result = await run_cli("bulk", str(job), "--no-journal", "--json", env=env)
    assert result.code == 0, result.err
    assert result.json()["journal"] is None
    assert not (tmp_path / "state" / "opentrain_async").exists()
    piped = await run_cli("bulk", "-", "--json", env=env, stdin=job.read_text())
    assert piped.code == 0, piped.err
    assert "cannot be resumed" in piped.err
    assert len(server.messages(conv)) == 6


async def test_journal_of_another_job_is_refused(server: FakeOpenTrain, tmp_path: Path) -> None:
    """--journal of another job file: exit 2 saying so; --reuse-journal goes on."""
    conv = server.add_conversation()
    first = write_jsonl(tmp_path / "first.jsonl", _records(conv, 2))
    second = write_jsonl(tmp_path / "second.jsonl", _records(conv, 2, "other"))
    journal = tmp_path / "j.journal"
    env = cli_env(server, tmp_path)
    assert (await run_cli("bulk", str(first), "--journal", str(journal), env=env)).code == 0
    refused = await run_cli("bulk", str(second), "--journal", str(journal), env=env)
    assert refused.code == 2
    assert_one_line_error(refused)
    assert "first.jsonl" in refused.err
    assert len(server.messages(conv)) == 2
    reused = await run_cli(
        "bulk", str(second), "--journal", str(journal), "--reuse-journal", env=env
    )
    assert reused.code == 0, reused.err
    assert len(server.messages(conv)) == 4


@pytest.mark.slow  # waits a second or more of real time
async def test_resume_with_a_journal_from_the_future_does_not_stall(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The clock was stepped back: the journal's open send is dated an hour ahead. The
    resume waits at most its 1 s settle time (not an hour), and still finds the message."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "ping"}])
    async with OpenTrainClient(server.token, server.base_url) as client:
        delivered = await client.send_message(conv, "ping")  # the crashed run's send
    digest = content_hash(conv, "ping")
    journal = tmp_path / "job.journal"
    started = {
        "event": "started",
        "id": identity(None, digest, 1),
        "line": 1,
        "conversationId": conv,
        "sha256": digest,
        "at": time.time() + 3600,
    }
    journal.write_text(journal_header(job, server) + json.dumps(started) + "\n")
    result = await run_cli(
        "bulk",
        str(job),
        "--journal",
        str(journal),
        "--json",
        env=cli_env(server, tmp_path),
        timeout=60,
    )
    assert result.code == 0, result.err
    assert (result.json()["reconciled"], result.json()["sent"]) == (1, 0)
    assert [m["id"] for m in server.messages(conv)] == [delivered.id]


async def test_a_run_of_429s_never_ends_an_input(server: FakeOpenTrain, tmp_path: Path) -> None:
    """More 429s in a row than the retry budget (with hints under max_retry_after): every
    input still ends delivered, none recorded as a rate_limited failure; exit 0."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 4))
    server.throttle_next(14, retry_after=0.01)
    result = await run_cli(
        "bulk", str(job), "--concurrency", "1", "--json", env=cli_env(server, tmp_path)
    )
    assert result.code == 0, result.err
    summary = result.json()
    assert (summary["sent"], summary["failed"]) == (4, 0)
    assert summary["rateLimited"] == 14
    assert len(server.messages(conv)) == 4
