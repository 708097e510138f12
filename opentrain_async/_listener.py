"""The ``Listener`` that ``listen()`` returns: the consumer's side of its engine (the
async generator in ``_listen``), and how a bot stops it, from its loop or another task."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from types import TracebackType

from ._models import Message

__all__ = ["Listener"]


class _Finished(Exception):
    """Thrown into the engine when the consumer leaves cleanly: the message it holds
    counts as finished."""


class Listener:
    """What ``listen()`` returns: new incoming messages, checkpointed one by one.

    ``async for message in listener`` yields messages; a message is *finished*, and the
    position after it saved durably, when the consumer:

    - asks for the next message (the loop body ran to its end, or ``continue``), or
    - leaves an ``async with client.listen(...) as messages:`` block without an
      exception (``break``, ``return``), or calls ``await messages.finish()``.

    Not finished, so delivered again by the next run: the message in hand when the
    loop body raises, when the process dies (SIGTERM without a handler, kill -9), or
    after a bare ``break`` out of ``async for`` with no ``async with``.  ``aclose()``
    stops without finishing it.  Either may be called from another task (a shutdown
    handler): a loop waiting for the next message then ends as after the last one.
    """

    def __init__(self, engine: AsyncGenerator[Message, None]) -> None:
        self._engine = engine
        self._holding = False
        self._waiter: asyncio.Task[object] | None = None
        """The task waiting in ``__anext__`` (the engine is running for it)."""
        self._waited = asyncio.Event()
        """Set whenever no task waits in ``__anext__``."""
        self._waited.set()
        self._stopping = False

    def __aiter__(self) -> Listener:
        return self

    async def __anext__(self) -> Message:
        self._holding = False
        if self._stopping:
            raise StopAsyncIteration
        self._waiter = asyncio.current_task()
        self._waited.clear()
        try:
            message = await self._engine.__anext__()
        except asyncio.CancelledError:
            if not self._stopping or not _taken_back(self._waiter):
                raise
            raise StopAsyncIteration from None  # stopped by another task: the loop ends
        finally:
            self._waiter = None
            self._waited.set()
        self._holding = True
        return message

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.finish()
        else:
            await self.aclose()

    async def finish(self) -> None:
        """Count the message in hand as finished, save the position after it, and stop."""
        if not self._holding:
            await self.aclose()
            return
        self._holding = False
        with contextlib.suppress(StopAsyncIteration):  # the engine saves, then ends
            await self._engine.athrow(_Finished())

    async def aclose(self) -> None:
        """Stop; the message in hand (if any) is not finished and comes back next run.

        From another task while the loop waits for the next message (the engine is
        running: closing it raised RuntimeError and the bot went on), the wait is
        cancelled, the engine ends with it, and the loop ends.  Nothing is in hand
        then; a save of the last message's position cut by it leaves the one before
        (the file is replaced whole): that message comes back once, as after SIGTERM.
        Called again meanwhile (a second handler), it waits for the same stop."""
        self._holding = False
        waiter = self._waiter
        if waiter is not None and waiter is not asyncio.current_task():
            if not self._stopping:  # one cancel: a second one (``aclose`` twice, from
                self._stopping = True  # two tasks) would not be taken back (3.11+)
                waiter.cancel()
            await self._waited.wait()
        await self._engine.aclose()


def _taken_back(task: asyncio.Task[object] | None) -> bool:
    """Our own cancel of ``task`` (``Listener.aclose``), taken back: False when it was
    cancelled by someone else too (that cancel goes on)."""
    uncancel = getattr(task, "uncancel", None)  # Python 3.11+
    return uncancel is None or uncancel() == 0
