"""Adversary round adv3: a ``bulk`` run halted by a quota 429 (hint past
``max_retry_after``) while the other conversations' next lines, already journaled as
started, wait at the pacer's pause.  The run cuts them after ``--grace``; the summary
must still account for every input (sent + failed + unknown + not started = inputs, as
tests/test_doomed_job.py holds for a revoked token) and ``--failures`` must list each
input not delivered.  On main 3e657ae the cut sends were in neither: 40 inputs, 13 sent,
1 failed, 19 not started, 7 nowhere (and a failures file of one line)."""

from __future__ import annotations

import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli
from .test_bulk_halt_resume import _QuotaAfter
from .test_cli_halt_signal import assert_each_part_once_in_order, interleaved_job

CONVERSATIONS = 8
PARTS = 5
ADMITTED = 13


async def test_a_quota_halt_accounts_for_the_sends_cut_at_the_pacer(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    convs, job = interleaved_job(server, tmp_path / "job.jsonl", CONVERSATIONS, PARTS)
    failures = tmp_path / "failures.jsonl"
    env = cli_env(server, tmp_path, HOME=str(tmp_path / "home"))
    server.set_rate_limit(_QuotaAfter(admitted=ADMITTED))  # type: ignore[arg-type]
    args = ("bulk", str(job), "--journal", str(tmp_path / "job.journal"))
    first = await run_cli(*args, "--grace", "0.5", "--failures", str(failures), "--json", env=env)
    summary = first.json()
    assert "quota is used up" in summary["stopped"], first.err
    assert summary["sent"] == ADMITTED
    accounted = summary["sent"] + summary["failed"] + summary["unknown"] + summary["notStarted"]
    assert accounted == summary["inputs"] == CONVERSATIONS * PARTS, summary
    listed = [json.loads(line) for line in failures.read_text().splitlines()]
    not_started = summary["notStarted"]
    assert len(listed) + not_started == CONVERSATIONS * PARTS - ADMITTED, listed
    # The rerun with its journal (reading back what the cut left open) delivers the rest.
    server.set_rate_limit(None)
    again = await run_cli(*args, "--json", env=env)
    assert again.code == 0, again.err
    assert server.stats()["duplicates"] == 0
    assert_each_part_once_in_order(server, convs, PARTS)
