"""Every child process a test starts ends with the test, however the test ends.

A test that fails (an assertion, a timeout, a cancel) between starting a CLI runner and
waiting for it used to leave the runner behind: running on into the next test on the
same worker (sending to a fake server whose port that test now owns), or stopped by
SIGSTOP for good.  ``ended_children`` (applied to every test by tests/conftest.py)
records each process started through ``asyncio.create_subprocess_exec`` or ``_shell``
while the test runs, and afterwards kills every one still running (SIGKILL, which ends a
stopped process too without letting it run on; SIGCONT only after it) and reaps it.
Processes started otherwise (``subprocess.run``, ``RedisServer``) end on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["Children", "ended_children"]

_NAMES = ("create_subprocess_exec", "create_subprocess_shell")


class Children:
    """The processes started while a test ran, with the loop that watches each."""

    def __init__(self) -> None:
        self.started: list[tuple[asyncio.subprocess.Process, asyncio.AbstractEventLoop]] = []

    def end(self, timeout: float = 30.0) -> list[int]:
        """Kill every child still running and reap it; their pids.  Called with no
        loop running (after the test's coroutine returned): each child's own loop is
        run until it has reaped the child, or, closed, ``waitpid`` reaps it here."""
        ended = []
        for proc, loop in self.started:
            if proc.returncode is not None:
                continue
            ended.append(proc.pid)
            for signum in (signal.SIGKILL, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    proc.send_signal(signum)
            if not loop.is_closed():
                loop.run_until_complete(asyncio.wait_for(proc.wait(), timeout))
            else:
                with contextlib.suppress(ChildProcessError):  # reaped by its watcher
                    os.waitpid(proc.pid, 0)
        return ended


@contextlib.contextmanager
def ended_children() -> Iterator[Children]:
    """Record the asyncio children started inside; kill and reap those left at the end
    (see the module docstring)."""
    children = Children()

    def recording(start: Any) -> Any:
        async def start_and_record(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
            proc = await start(*args, **kwargs)
            children.started.append((proc, asyncio.get_running_loop()))
            return proc

        return start_and_record

    with pytest.MonkeyPatch.context() as patch:
        for name in _NAMES:
            wrapper = recording(getattr(asyncio.subprocess, name))
            patch.setattr(asyncio.subprocess, name, wrapper)
            patch.setattr(asyncio, name, wrapper)
        try:
            yield children
        finally:
            children.end()
