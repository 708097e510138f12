"""``journal show FILE`` takes the job file too: it shows that job's default journal, and
says what to do when there is none (not ``bulk``'s advice)."""

from __future__ import annotations

import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl


async def test_journal_show_of_the_job_file_shows_its_default_journal(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """After ``bulk job.jsonl``, ``journal show job.jsonl`` summarises that run, and says
    which journal it read."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(3)]
    )
    env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
    sent = await run_cli("bulk", str(job), env=env)
    assert sent.code == 0, sent.err
    shown = await run_cli("journal", "show", str(job), "--json", env=env)
    assert shown.code == 0, shown.err
    summary = json.loads(shown.out)
    assert (summary["inputs"], summary["delivered"]) == (3, 3)
    assert summary["input"] == str(job.resolve())
    assert summary["journal"].startswith(str(tmp_path / "state"))
    assert "is a job file: showing its default journal" in shown.err
    direct = await run_cli("journal", "show", summary["journal"], "--json", env=env)
    assert direct.code == 0, direct.err
    assert json.loads(direct.out) == summary
    assert direct.err == ""


async def test_journal_show_of_a_job_never_run_says_so(tmp_path: Path) -> None:
    """A job file with no default journal: one line naming both paths, no advice to pass
    ``--journal`` (which ``journal show`` does not take)."""
    job = write_jsonl(tmp_path / "never.jsonl", [{"conversationId": "c", "content": "x"}])
    env = cli_env(None, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
    shown = await run_cli("journal", "show", str(job), env=env)
    assert shown.code != 0
    assert_one_line_error(shown)
    assert "never.jsonl is not a journal" in shown.err
    assert "has no default journal" in shown.err
    assert "Pass a new path with --journal" not in shown.err
