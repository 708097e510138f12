"""The command line's output piped into a reader that stops early (``| head``): the
command ends quietly, as a tool that SIGPIPE ends (exit 141), not with "error: I/O
error: Broken pipe" and exit 2 (a usage error), which under ``set -o pipefail`` read
as a bad command line.  A real child process: the closed pipe is the point."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT, cli_env

SIGPIPE_EXIT = 141


def first_line_then_close(args: tuple[str, ...], env: Mapping[str, str]) -> tuple[int, str]:
    """Run the CLI, read one line of its output, close the pipe: its exit code and stderr."""
    with subprocess.Popen(  # noqa: S603 (our own CLI, this interpreter)
        [sys.executable, "-m", "opentrain_async", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        return proc.wait(timeout=60), err


@pytest.mark.process
@pytest.mark.parametrize("args", [("conversations",), ("conversations", "--json")])
async def test_a_listing_piped_into_head_ends_quietly(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    async with FakeOpenTrain(record_requests=False) as server:
        for _ in range(3_000):  # far more than a pipe's buffer holds
            server.add_conversation()
        code, err = await asyncio.to_thread(first_line_then_close, args, cli_env(server, tmp_path))
    assert err == ""
    assert code == SIGPIPE_EXIT
