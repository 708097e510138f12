"""Waiting in real time on a state another task or process reaches, with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["until"]


async def until(
    condition: Callable[[], bool], what: str = "the condition", timeout: float = 30.0
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds.

    For what has no event to await: the fake server's counters, a child process's
    state, a Redis key.  It waits on a state, never for things to "settle"; the timeout
    only bounds a failing test (a loaded machine may take seconds for what is quick)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)  # a poll, short beside any wait the tests mean
