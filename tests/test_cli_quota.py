"""An exhausted quota (every send answered 429 with a hint of an hour) stops the run
like a doomed job, instead of crawling one input per pacer pause."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl


async def test_a_quota_gone_for_an_hour_stops_the_run_early(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m {i}"} for i in range(50)]
    )
    server.throttle_next(10_000, retry_after=3600)
    result = await cli(
        "bulk", str(job), "--concurrency", "2", "--grace", "0.5", "--json", server=server
    )
    summary = result.json()
    assert result.code == 3, result.err
    assert "quota is used up" in summary["stopped"]
    assert summary["notStarted"] >= 40  # stopped after the first answers, not per input
    assert server.stats()["rate_limited"] <= 4
    server.clear_faults()
    again = await cli("bulk", str(job), "--json", server=server)
    assert (again.code, again.json()["sent"]) == (0, 50), again.err
    assert server.stats()["duplicates"] == 0
