"""Job files and arguments a careless user hands the CLI: pipes, devices, CSV headers,
nested journal lines, typos; each one line and an exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, run_cli_process
from .test_hostile import arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


# -- job files that are not regular files -------------------------------------------------


@pytest.mark.process
async def test_a_job_read_from_a_pipe_loses_no_input(server: FakeOpenTrain, tmp_path: Path) -> None:
    """``cmd | opentrain-async bulk /dev/stdin`` (or ``bulk <(cmd)``): a pipe can be read
    once only; all 500 inputs are sent (the first pass used to eat the first ~8 KiB, and
    the send pass got the rest: 424 inputs, one of them a torn line)."""
    conv = server.add_conversation()
    lines = [
        json.dumps({"conversationId": conv, "content": f"message {i:05d} " + "x" * 40})
        for i in range(500)
    ]
    result = await run_cli_process(  # a real pipe on the process's stdin
        "bulk", "/dev/stdin", env=cli_env(server, tmp_path), stdin="\n".join(lines) + "\n"
    )
    assert result.code == 0, result.err
    assert len(server.messages(conv)) == 500
    assert server.stats()["duplicates"] == 0


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
async def test_a_device_as_job_file_is_one_line_exit_2(
    server: FakeOpenTrain, tmp_path: Path, extra: list[str]
) -> None:
    """``bulk /dev/zero`` is refused at once (it used to read until MemoryError)."""
    result = await run_cli("bulk", "/dev/zero", *extra, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert_one_line_error(result)
    assert "/dev/zero: not a regular file" in result.err
    assert server.sends == []


async def test_a_concurrency_typo_is_a_usage_error(server: FakeOpenTrain, tmp_path: Path) -> None:
    """``--concurrency 3000000`` (zeros too many) is exit 2 at once; it used to start three
    million workers for a one-line job and run out of memory before sending."""
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": server.add_conversation(), "content": "x"}))
    result = await run_cli(
        "bulk", str(job), "--concurrency", "3000000", env=cli_env(server, tmp_path), timeout=30
    )
    assert result.code == 2
    assert "at most 1,000" in result.err
    assert "Traceback" not in result.err
    assert server.sends == []


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
async def test_a_csv_header_naming_a_column_twice_is_refused(
    server: FakeOpenTrain, tmp_path: Path, extra: list[str]
) -> None:
    """``conversationId,content,content``: which text was meant? (The last column used
    to be sent silently.)"""
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(f"conversationId,content,content\n{conv},draft,final\n")
    result = await run_cli("bulk", str(job), *extra, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert_one_line_error(result)
    assert "content more than once" in result.err
    assert server.sends == []


async def test_a_journal_line_nested_thousands_deep_is_one_line_exit_2(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """An edited (or foreign) journal whose line is JSON nested 50,000 deep: refused in
    one line, nothing sent (was a RecursionError traceback)."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": conv, "content": "hi"}) + "\n")
    journal = tmp_path / "job.journal"
    journal.write_bytes(b"[" * 50_000 + b"]" * 50_000 + b"\n")
    result = await run_cli(
        "bulk", str(job), "--journal", str(journal), env=cli_env(server, tmp_path)
    )
    assert result.code == 2
    assert_one_line_error(result)
    assert server.sends == []
