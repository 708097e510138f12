"""FakeTime: a clock and a sleep that advance together, so tests never really wait.

Hand ``clock``, ``sleep`` and ``time`` to an ``OpenTrainClient`` (and ``clock`` and
``datetime`` to a ``FakeOpenTrain``) and every backoff, pacing pause and retry hint
completes at once while the clocks move by exactly the time that would have passed.

The model: virtual time never runs on its own; it moves only when a sleeper is woken
(or a test calls ``advance``). A sleep registers its deadline and yields; after one
event-loop turn the earliest pending deadline wins, the clock jumps there and that
sleeper resumes. Two tasks sleeping 1 s at once therefore both wake at +1 s (not +2 s),
and a 1 s sleep always wakes before a 5 s one. Real I/O (the fake server on loopback)
takes no virtual time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["FakeTime"]

_START: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeTime:
    """A virtual monotonic clock, wall clock and ``asyncio.sleep`` that move together."""

    def __init__(self, *, start: float = 1000.0, wall_start: datetime = _START) -> None:
        """Start the monotonic clock at `start` and the wall clock at `wall_start` (aware)."""
        if wall_start.tzinfo is None:
            raise ValueError("wall_start must be timezone-aware")
        self.now = start
        """The monotonic clock's value; tests may set it directly."""
        self._start = start
        self._wall_start = wall_start
        self.sleeps: list[float] = []
        """Every sleep requested, in order (what a test usually asserts on)."""
        self.on_sleep: list[Callable[[float], None]] = []
        """Callbacks run with the duration whenever a sleep is requested (before it waits)."""
        self._pending: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._wake_scheduled = False

    def __repr__(self) -> str:
        return f"FakeTime(elapsed={self.elapsed:.3f}, sleeps={len(self.sleeps)})"

    @property
    def elapsed(self) -> float:
        """Virtual seconds since this FakeTime was created."""
        return self.now - self._start

    @property
    def slept(self) -> float:
        """The total of every sleep requested (concurrent sleeps both count)."""
        return sum(self.sleeps)

    def clock(self) -> float:
        """The monotonic clock (pass as ``clock=``)."""
        return self.now

    def time(self) -> float:
        """Wall-clock seconds since the epoch (pass as ``wall_clock=``)."""
        return self.datetime().timestamp()

    def datetime(self) -> datetime:
        """The wall clock as an aware UTC datetime (pass to ``FakeOpenTrain(now=...)``)."""
        return self._wall_start + timedelta(seconds=self.now - self._start)

    def advance(self, seconds: float) -> None:
        """Move the clocks forward by `seconds` without waking anyone early."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of virtual time: returns after the earlier sleepers, in no real time."""
        seconds = max(0.0, float(seconds))
        self.sleeps.append(seconds)
        for callback in list(self.on_sleep):
            callback(seconds)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._pending, (self.now + seconds, next(self._order), future))
        self._schedule(loop)
        await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake the earliest sleeper after the loop has run once more."""
        if not self._wake_scheduled:
            self._wake_scheduled = True
            loop.call_soon(self._wake, loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        """Jump to the earliest live deadline and resolve that sleep."""
        self._wake_scheduled = False
        while self._pending:
            deadline, _, future = heapq.heappop(self._pending)
            if future.done():  # the sleeper was cancelled
                continue
            self.now = max(self.now, deadline)
            future.set_result(None)
            break
        if self._pending:
            self._schedule(loop)
