"""One request waiting in a pacer's queue (``pacer.Pacer``): granted a start time, or
asked to lead."""

from __future__ import annotations

import asyncio

__all__ = ["Waiter"]


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
