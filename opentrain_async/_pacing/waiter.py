"""One request waiting in a pacer's queue (``pacer.Pacer``): granted a start time, or
asked to lead; and the pacer's "this, or a nap, whichever ends first"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Waiter", "at_most", "until_done"]


class Waiter:
    """One request waiting for a slot: granted a start time, or asked to lead."""

    __slots__ = ("future", "slot")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[None] = loop.create_future()
        self.slot: float | None = None

    def wake(self, slot: float | None = None) -> None:
        if slot is not None:
            self.slot = slot
        if not self.future.done():
            self.future.set_result(None)


async def until_done(future: asyncio.Future[Any], nap: Awaitable[None]) -> None:
    """Wait until ``future`` is done or ``nap`` (the pacer's sleep: virtual time in tests)
    has ended, whichever comes first; ``future`` is left running."""
    napping = asyncio.ensure_future(nap)
    try:
        await asyncio.wait((future, napping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        napping.cancel()


async def at_most(task: asyncio.Task[Any] | None, nap: Callable[[], Awaitable[Any]]) -> None:
    """Wait for ``task`` (None or done: not at all) until ``nap()`` ends; still running
    then, it is cancelled (and its end awaited, its exception dropped)."""
    if task is None or task.done():
        return
    await until_done(task, nap())
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)
