"""``-`` given as a file the job writes: refused, named, before anything is sent.
``--failures -`` wrote a file named ``-`` (stdout carries the summary, so it cannot be
that), and ``--journal -`` kept the job's journal in a file named ``-``."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("--failures", "'-' is not stdout here (the summary goes there): name a file"),
        ("--journal", "'-' cannot be a journal"),
    ],
)
async def test_a_dash_is_refused_where_the_job_writes_a_file(
    server: FakeOpenTrain, tmp_path: Path, option: str, says: str
) -> None:
    conversation = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conversation, "content": "hi"}])
    env = cli_env(server, tmp_path)
    result = await run_cli("bulk", str(job), option, "-", env=env, cwd=tmp_path)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert f"error: argument {option}: {says}" in result.err.strip().splitlines()[-1]
    assert "./- for a file named -" in result.err
    assert server.stats()["requests"] == 0
    assert not (tmp_path / "-").exists()
