"""On a terminal, what ``bulk`` says after Ctrl-C starts on a cleared line: it does not
land on the live progress line (where the terminal echoed ``^C``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
import sys
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import ROOT, cli_env, write_jsonl

CLEAR = b"\r\x1b[K"


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _read_until(fd: int, seen: bytearray, marker: bytes | None, timeout: float) -> None:
    """Read the terminal into `seen` until `marker` shows (None: until it closes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while marker is None or marker not in seen:
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, _wake, ready)
        try:
            await asyncio.wait_for(ready, max(0.0, deadline - loop.time()))
        finally:
            loop.remove_reader(fd)
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            chunk = b""
        if not chunk:
            assert marker is None, bytes(seen)
            return
        seen += chunk


@pytest.mark.process
async def test_the_interrupt_note_clears_the_live_line(tmp_path: Path) -> None:
    """SIGINT mid-run on a terminal: the note starts with the line cleared, the run exits
    130 and says how to resume."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=20, burst=1))
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": conv, "content": f"m{i}"} for i in range(200)],
        )
        controller, terminal = pty.openpty()
        os.set_blocking(controller, False)
        env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"), COLUMNS="100")
        seen = bytearray()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "opentrain_async",
                "bulk",
                str(job),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=terminal,
                env=env,
                cwd=ROOT,
            )
            os.close(terminal)
            terminal = -1
            await _read_until(controller, seen, b"/200", 60)  # the live line is drawn
            proc.send_signal(signal.SIGINT)
            await _read_until(controller, seen, None, 60)
            code = await asyncio.wait_for(proc.wait(), 60)
        finally:
            os.close(controller)
            if terminal >= 0:
                os.close(terminal)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    assert code == 130, bytes(seen)
    note = seen.index(b"SIGINT: starting no new sends")
    assert seen[note - len(CLEAR) : note] == CLEAR, bytes(seen[note - 40 : note + 10])
