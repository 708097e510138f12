"""The in-process CLI runner the CLI tests use (tests/cli_helpers.run_cli): it captures
what a child process would print, and a run that times out ends with its test."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, in_process_runs_ended, run_cli


@pytest.mark.slow  # waits a second or more of real time
async def test_a_run_that_times_out_is_interrupted_and_leaves_nothing_behind(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """``messages --follow`` never ends by itself: on the timeout the run gets Ctrl-C,
    and the process's environment and streams are the test's again."""
    conv = server.add_conversation()
    env_before, stdout_before = dict(os.environ), sys.stdout
    with pytest.raises(asyncio.TimeoutError):  # TimeoutError itself only from 3.11
        await run_cli(
            "messages", conv, "--follow", "--interval", "0.05",
            env=cli_env(server, tmp_path, MARKER="in-run"), timeout=1.0,
        )  # fmt: skip
    assert in_process_runs_ended(timeout=0)
    assert dict(os.environ) == env_before
    assert sys.stdout is stdout_before


async def test_output_exit_code_and_stdin_are_the_runs(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """stdin goes in, stdout and stderr come out as UTF-8 text, the exit code is main's;
    a usage error is argparse's exit 2 on stderr."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path)
    sent = await run_cli("send", conv, "-", "--json", env=env, stdin="héllo\n")
    assert (sent.code, sent.json()["content"]) == (0, "héllo"), sent.err
    usage = await run_cli("send", env=env)
    assert usage.code == 2
    assert usage.out == ""
    assert "usage:" in usage.err
