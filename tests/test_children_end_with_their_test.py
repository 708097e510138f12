"""Every child process a test starts is gone when the test ends, however it ends
(tests/children.py, wired into every test by tests/conftest.py).

Tests of this suite run inside an inner pytest session (pytester, in this process) that
loads tests/conftest.py as its plugin: each starts children, one of them SIGSTOPped, and
ends by failing, by timing out, by being cancelled, or by passing without waiting for
them.  Afterwards no child may exist: ``kill(pid, 0)`` still finds a zombie, so its
ProcessLookupError says killed and reaped both."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

_INNER = """
import asyncio, signal
from pathlib import Path

import pytest

async def _children(name):
    stopped = await asyncio.create_subprocess_exec("sleep", "600")
    stopped.send_signal(signal.SIGSTOP)
    running = await asyncio.create_subprocess_shell("exec sleep 600")
    Path(name).write_text(f"{stopped.pid} {running.pid}")

@pytest.mark.asyncio
async def test_fails():
    await _children("fails")
    raise AssertionError("the test failed with its children running")

@pytest.mark.asyncio
async def test_times_out():
    await _children("times-out")
    await asyncio.wait_for(asyncio.Event().wait(), 0.01)

@pytest.mark.asyncio
async def test_is_cancelled():
    await _children("cancelled")
    asyncio.current_task().cancel()
    await asyncio.sleep(0)

@pytest.mark.asyncio
async def test_passes_without_waiting():
    await _children("passes")
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.process
def test_children_are_killed_and_reaped_however_the_test_ends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=_INNER)
    pytester.syspathinsert(Path(__file__).resolve().parents[1])
    result = pytester.runpytest_inprocess(
        "-p", "tests.conftest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q"
    )
    result.assert_outcomes(passed=1, failed=3)
    pids = {
        name: [int(pid) for pid in (pytester.path / name).read_text().split()]
        for name in ("fails", "times-out", "cancelled", "passes")
    }
    left = {name: [pid for pid in both if not _gone(pid)] for name, both in pids.items()}
    assert left == {name: [] for name in pids}
