"""The bulk command keeps each conversation in order: across 429s, a failure for good
(the rest of the conversation is not sent, also on a resume) and kill -9 plus resume."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import cli_env, run_cli, start_cli, until_committed, write_jsonl


def _job(path: Path, conversations: list[str], parts: int = 5) -> Path:
    return write_jsonl(
        path,
        [
            {"conversationId": c, "content": f"part {k} of {parts}"}
            for c in conversations
            for k in range(1, parts + 1)
        ],
    )


def _parts(server: FakeOpenTrain, conv: str) -> list[int]:
    return [int(m["content"].split()[1]) for m in server.messages(conv)]


@pytest.mark.process
async def test_kill_9_mid_job_then_resume_keeps_every_conversation_in_order(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A real bulk process, slowed by the server and 429s on its first sends, is killed
    with SIGKILL with sends on the wire; the rerun reads back what it left open and
    finishes: every conversation reads 1..5, nothing twice."""
    conversations = [server.add_conversation() for _ in range(12)]
    job = _job(tmp_path / "job.jsonl", conversations)
    journal = tmp_path / "job.journal"
    env = cli_env(server, tmp_path)
    server.set_rate_limit(TokenBucket(rate=40, burst=4))
    server.throttle_next(12, retry_after=0.2)
    server.script("POST /messages", delay=0.05, times=None, after_commit=True)
    process = await start_cli("bulk", str(job), "--journal", str(journal), env=env)
    try:
        await until_committed(server, 20, process)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert server.stats()["committed"] < 60  # killed mid-job
    server.clear_faults()
    server.set_rate_limit(None)
    resumed = await run_cli("bulk", str(job), "--journal", str(journal), "--json", env=env)
    assert resumed.code == 0, resumed.err
    assert server.stats()["duplicates"] == 0
    for conv in conversations:
        assert _parts(server, conv) == [1, 2, 3, 4, 5]


async def test_a_failed_line_stops_its_conversation_also_on_a_rerun(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Line 3 of a conversation refused for good: lines 4-5 are not sent (reason
    blocked_by_earlier_failure), the other conversation is delivered; a rerun sends
    nothing more; --on-failure continue sends 4 and 5 after it."""
    bad, good = server.add_conversation(), server.add_conversation()
    server.block_content("spam")
    lines = [{"conversationId": bad, "content": f"part {k} of 5"} for k in range(1, 6)]
    lines[2]["content"] += " spam"
    lines += [{"conversationId": good, "content": f"part {k} of 5"} for k in range(1, 6)]
    job = write_jsonl(tmp_path / "job.jsonl", lines)
    journal = tmp_path / "job.journal"
    env = cli_env(server, tmp_path)
    failures = tmp_path / "failures.jsonl"
    first = await run_cli(
        "bulk", str(job), "--journal", str(journal), "--json", "--failures", str(failures), env=env
    )
    assert first.code == 1
    rows = [json.loads(line) for line in failures.read_text().splitlines()]
    blocked = [r for r in rows if r["opentrain"]["reason"] == "blocked_by_earlier_failure"]
    assert len(blocked) == 2
    assert all("line 3 of conversation" in json.dumps(r) for r in blocked), blocked
    assert _parts(server, bad) == [1, 2]
    assert _parts(server, good) == [1, 2, 3, 4, 5]
    summary = first.json()
    assert summary["sent"] == 7
    assert "blocked_by_earlier_failure" in first.out
    again = await run_cli("bulk", str(job), "--journal", str(journal), "--json", env=env)
    assert again.code == 1
    assert again.json()["sent"] == 0
    assert _parts(server, bad) == [1, 2]
    other = tmp_path / "other.journal"
    going_on = await run_cli(
        "bulk", str(job), "--journal", str(other), "--on-failure", "continue", env=env
    )
    assert going_on.code == 1
    assert _parts(server, bad) == [1, 2, 1, 2, 4, 5]
