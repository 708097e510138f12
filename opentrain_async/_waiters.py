"""``Waiters``: tasks waiting in line for a value, first come, first served.

The one home of the future-per-waiter dance that asyncio's own queues and semaphores do
inside: ``wait`` parks the task on a future at the back of the line, ``wake`` hands a
value to the oldest task still waiting.  Cancellation is handled once, here: a task
cancelled in line leaves it, and a task cancelled after it was handed a value (woken,
but not yet run) gives that value back through ``on_abandoned`` (by default to the next
in line), so a wake-up is never lost.  Used by ``send_many``'s outcome queue and the
pacer's slow-start window.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Waiters"]

T = TypeVar("T")


class Waiters(Generic[T]):
    """A FIFO of tasks waiting for a value of type ``T``."""

    __slots__ = ("_line",)

    def __init__(self) -> None:
        self._line: deque[asyncio.Future[T]] = deque()

    def __bool__(self) -> bool:
        """True while a task may be waiting (cancelled ones have left the line)."""
        return bool(self._line)

    def __len__(self) -> int:
        return len(self._line)

    async def wait(self, on_abandoned: Callable[[T], None] | None = None) -> T:
        """Wait at the back of the line for the value a ``wake`` hands over.

        Cancelled after being handed a value: ``on_abandoned(value)`` (default: the
        value goes to the next in line) before the cancellation goes on.
        """
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        line = self._line
        line.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.cancelled():  # cancelled in line: leave it
                with contextlib.suppress(ValueError):
                    line.remove(waiter)
            else:  # woken, then cancelled before it ran: the value must not be lost
                value = waiter.result()
                if on_abandoned is None:
                    self.wake(value)
                else:
                    on_abandoned(value)
            raise

    def wake(self, value: T) -> bool:
        """Hand ``value`` to the oldest waiting task; False when nobody waits."""
        line = self._line
        while line:
            waiter = line.popleft()
            if not waiter.done():
                waiter.set_result(value)
                return True
        return False

    def wake_all(self, value: T) -> None:
        """Hand ``value`` to every waiting task."""
        while self.wake(value):
            pass
