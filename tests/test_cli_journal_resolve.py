"""``journal resolve``: failures fixed elsewhere stop failing the job. The next run counts
them as done, says so, and exits 0; nothing is sent again unless ``--retry-failed``."""

from __future__ import annotations

import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl
from .redis_server import RedisServer


def _job(server: FakeOpenTrain, tmp_path: Path) -> Path:
    ok = server.add_conversation()
    closed = server.add_conversation(send_block="read_only_conversation")
    return write_jsonl(
        tmp_path / "job.jsonl",
        [{"conversationId": ok, "content": f"m{i}"} for i in range(3)]
        + [{"conversationId": closed, "content": "refused", "key": "r1"}],
    )


async def test_a_resolved_failure_lets_the_job_exit_0_and_says_so(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Run (exit 1), resolve the failure by key, run again: exit 0, one input resolved,
    no request sent; --retry-failed still resends it."""
    job = _job(server, tmp_path)
    env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
    first = await run_cli("bulk", str(job), env=env)
    assert first.code == 1, first.err
    sends = len(server.sends)

    resolved = await run_cli(
        "journal", "resolve", str(job), "--key", "r1", "--note", "sent by hand", env=env
    )
    assert resolved.code == 0, resolved.err
    assert "resolved 1 failed input(s)" in resolved.out

    again = await run_cli("bulk", str(job), "--json", env=env)
    assert again.code == 0, again.err
    summary = json.loads(again.out)
    assert (summary["resolved"], summary["delivered"], summary["failed"]) == (1, 3, 0)
    assert summary["exitCode"] == 0
    assert len(server.sends) == sends  # nothing sent again
    table = await run_cli("bulk", str(job), env=env)
    assert "marked fixed elsewhere (journal resolve)" in table.out + table.err

    shown = await run_cli("journal", "show", str(job), "--json", env=env)
    assert json.loads(shown.out)["inputs"] == 4

    retried = await run_cli("bulk", str(job), "--retry-failed", "--json", env=env)
    assert retried.code == 1  # resent, refused again: a failure again
    assert len(server.sends) == sends + 1
    assert json.loads(retried.out)["resolved"] == 0


async def test_resolving_what_did_not_fail_changes_nothing(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A delivered input's line, or a key never run: one line, exit 2, journal untouched."""
    job = _job(server, tmp_path)
    env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
    assert (await run_cli("bulk", str(job), env=env)).code == 1
    for which in (["--line", "1"], ["--key", "nope"]):
        refused = await run_cli("journal", "resolve", str(job), *which, env=env)
        assert refused.code == 2, refused.err
        assert_one_line_error(refused)
        assert "is not a failed input" in refused.err
    assert (await run_cli("bulk", str(job), env=env)).code == 1


async def test_resolve_all_failed_on_a_redis_journal(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The Redis journal takes ``resolve`` too (under the job's lease)."""
    job = _job(server, tmp_path)
    env = cli_env(server, tmp_path)
    url = f"{redis_server.url}?job=resolve-me"
    assert (await run_cli("bulk", str(job), "--journal", url, env=env)).code == 1
    resolved = await run_cli("journal", "resolve", url, "--all-failed", env=env)
    assert resolved.code == 0, resolved.err
    again = await run_cli("bulk", str(job), "--journal", url, "--json", env=env)
    assert again.code == 0, again.err
    assert json.loads(again.out)["resolved"] == 1
