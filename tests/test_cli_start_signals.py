"""SIGINT and SIGTERM before a bulk run sends anything, on a real subprocess (the
process is the point): while Python imports the package, and during a slow pre-send
check.  One line, exit 128+N, never a traceback or a silent -15, nothing sent."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, start_cli, write_jsonl


async def _finish(proc: asyncio.subprocess.Process, timeout: float) -> tuple[int, str]:
    _, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.process
async def test_a_signal_during_a_slow_pre_send_check_stops_at_once(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The pre-send check hangs (a server that takes a minute to answer): a signal
    stopped nothing until it gave up (13 s), and a second one was ignored too.  Now the
    first signal ends the run at once; nothing was sent."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "hi"}])
        server.script("GET /auth/me", delay=120, times=None)
        proc = await start_cli("bulk", str(job), env=cli_env(server, tmp_path))
        deadline = time.monotonic() + 30
        while not [r for r in server.requests if r.path.endswith("/auth/me")]:
            assert time.monotonic() < deadline, "the pre-send check never started"
            assert proc.returncode is None
            await asyncio.sleep(0.01)
        proc.send_signal(signum)
        code, err = await _finish(proc, timeout=20)
        assert code == 128 + signum, err
        assert "Traceback" not in err
        assert f"interrupted by {signum.name}" in err
        assert "nothing was sent" in err
        assert server.stats()["sends"] == 0


def _catches_sigterm(pid: int) -> bool:
    """The process has a SIGTERM handler (the package's start-up guard is in place):
    from then on its own code decides.  Before it, Python itself is starting."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.process
async def test_a_signal_while_the_cli_starts_is_a_clear_exit(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C or SIGTERM in the first fraction of a second (Python importing the
    package, parsing, starting the loop): was a KeyboardInterrupt traceback, or exit
    -15 with no word.  Now one line and 128+N, wherever the signal lands once the
    package's first line has run."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
        server.script("GET /auth/me", delay=120, times=None)  # never past the check
        await _signal_at_start(job, cli_env(server, tmp_path), signum)
        assert server.stats()["sends"] == 0


async def _signal_at_start(job: Path, env: dict[str, str], signum: signal.Signals) -> None:
    for delay in (0.0, 0.05, 0.15, 0.3):
        proc = await start_cli("bulk", str(job), env=env)
        deadline = time.monotonic() + 30
        while not _catches_sigterm(proc.pid):
            assert time.monotonic() < deadline, "the start-up guard was never installed"
            assert proc.returncode is None
            await asyncio.sleep(0.002)
        await asyncio.sleep(delay)  # where in the start-up the signal lands
        proc.send_signal(signum)
        code, err = await _finish(proc, timeout=30)
        assert "Traceback" not in err, (delay, err)
        assert code == 128 + signum, (delay, code, err)
        assert f"interrupted by {signum.name}" in err, (delay, err)
        assert len(err.strip().splitlines()) == 1, (delay, err)
