"""Small error paths of the command line, each one line that says exactly what is wrong:
a bad ``--pacing-url``, a JSON error at the end of a line, a journal locked by a run."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import pytest

from opentrain_async._cli import _pacing_url_problem
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("cache", "'cache': no scheme"),
        ("cache:6379", "'cache:6379': no scheme"),
        ("http://cache:6379/0", "got 'http'"),
        ("redis://:pw@cache:6379/zero", "the database must be a number, got 'zero'"),
        ("redis://:pw@/0", "'redis://:***@/0': no host"),
        ("redis://cache:port/0", "not a valid URL"),
    ],
)
def test_a_malformed_pacing_url_says_what_is_wrong(url: str, said: str) -> None:
    """Each mistake is named, with the expected shape, never the password."""
    problem = _pacing_url_problem(url)
    assert problem is not None
    assert said in problem
    assert "redis://[:password@]host:6379/0" in problem
    assert "pw@" not in problem


def test_a_good_pacing_url_is_no_problem() -> None:
    """Valid URLs (and none) pass."""
    for url in (None, "", "redis://cache:6379/0", "rediss://:pw@cache:6380/1", "unix:///tmp/r"):
        assert _pacing_url_problem(url) is None


async def test_a_bad_pacing_url_is_a_usage_error(server: FakeOpenTrain, tmp_path: Path) -> None:
    """Exit 2 (usage), one line naming the flag, nothing sent."""
    conv = server.add_conversation()
    result = await run_cli(
        "send", conv, "hi", "--pacing-url", "cache:6379", env=cli_env(server, tmp_path)
    )
    assert result.code == 2
    assert_one_line_error(result)
    assert "--pacing-url: " in result.err
    assert server.sends == []


async def test_a_json_error_at_the_end_of_a_line_says_so(tmp_path: Path) -> None:
    """A line cut short: "at the end of the line", never a column past its end."""
    text = '{"conversationId": "conv_1", "content": "no closing brace"'
    job = write_jsonl(tmp_path / "job.jsonl", [text])
    result = await run_cli("bulk", str(job), "--dry-run", env=cli_env(None, tmp_path))
    assert result.code == 2, result.err
    said = result.out + result.err  # --dry-run lists bad lines on stdout
    assert f"at the end of the line (it ends at column {len(text)})" in said
    assert f"column {len(text) + 1}" not in said


async def test_a_locked_journal_names_the_pid_of_its_run(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A second run on a journal in use: one line naming the running job's pid."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "a"}])
    journal = tmp_path / "job.journal"
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--journal", str(journal), env=env)
    assert first.code == 0, first.err
    with journal.open("ab") as file:  # this test process plays the running job
        run = {"event": "run", "at": time.time(), "pid": os.getpid(), "input": str(job)}
        file.write(json.dumps(run).encode() + b"\n")
        file.flush()
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = await run_cli("bulk", str(job), "--journal", str(journal), env=env)
    assert second.code == 2, second.err
    assert_one_line_error(second)
    assert "is in use by another running job" in second.err
    assert f"pid {os.getpid()}" in second.err
