"""A bulk run that stops early: its last progress line counts as failed only what the
summary counts as failed.  The inputs the stop left unsent are the summary's "not
started" (the next run sends them); the progress line called every one of them
failed (a doomed batch's 401s: "32 failed" above a summary of 16 failed; a journal
on a full disk: "569 failed" above 0 failed, 569 not started)."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


async def test_a_stopped_runs_progress_line_counts_the_summarys_failures(
    tmp_path: Path,
) -> None:
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(50)]
        server.script("POST /messages", status=401, error="token revoked", times=None)
        rows = [{"conversationId": conv, "content": f"m{i}"} for i, conv in enumerate(convs)]
        job = write_jsonl(tmp_path / "job.jsonl", rows)
        result = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    summary = result.json()
    assert result.code != 0, result.err
    assert summary["notStarted"] > 0, summary
    final = [line for line in result.err.splitlines() if line.startswith("progress: ")][-1]
    assert f"· {summary['failed']:,} failed ·" in final, (final, summary)
