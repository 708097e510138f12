"""Rate control shared by every request of one client: the pacer.

Before each attempt the client awaits ``Pacer.acquire()``; after it, it reports
``on_success`` or ``on_throttle`` (a 429 and its hint).  The pacer turns those reports
into a sending rate:

* **Stated limit** (``rate_limit=``): requests are spaced evenly at that rate (GCRA
  virtual scheduling), so a server with that limit never has to answer 429.
* **Learned limit** (default): nothing is paced until the first 429.  Then the rate
  becomes what the server demonstrably accepted over the last second (its measured
  throughput), cut a little, and grows back along a cubic curve (as CUBIC/botocore do)
  so that a raised limit is found again within a second or two.  Each 429 also pauses
  the whole client until the server's hint when the hint is short, so requests already
  queued do not run into the same wall.  Only one cut happens per reaction: 429s for
  requests sent before the last cut do not cut again.

The state worth sharing between processes that use one token (current limit, the time
of the last cut, pause-until) lives in a ``PacingState`` held by a ``PacingStore``;
the default keeps it in memory.  A shared store (Redis, a file) can implement the same
two methods without touching the send path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

__all__ = ["InMemoryPacingStore", "Pacer", "PacingState", "PacingStore"]


@attrs.define
class PacingState:
    """What the pacer has learned; everything a shared store would need to hold."""

    limit: float | None = None
    """The learned (or stated) sustainable rate in requests/second; None: unknown."""
    cut_at: float | None = None
    """Clock time of the last rate cut (a reaction to a 429)."""
    pause_until: float = 0.0
    """No request starts before this clock time."""
    throttles: int = 0
    """429s reported to this pacer."""


class PacingStore(Protocol):
    """Holds the ``PacingState`` of every sender that shares one token."""

    def load(self) -> PacingState:
        """Return the current state (the pacer treats it as read-only)."""

    def save(self, state: PacingState) -> None:
        """Replace the current state."""


class InMemoryPacingStore:
    """The default store: state lives in this process only."""

    def __init__(self) -> None:
        self._state = PacingState()

    def load(self) -> PacingState:
        """Return the current state."""
        return self._state

    def save(self, state: PacingState) -> None:
        """Replace the current state."""
        self._state = state


class Pacer:
    """Decides when each request of one client may start; see the module docstring.

    ``beta`` is the cut applied to the measured rate on a 429; ``recover`` is the time
    (seconds) the cubic curve takes to climb back to the limit after a cut, after which
    it probes above it.  ``clock`` and ``sleep`` are injectable for tests.
    """

    window = 1.0
    """Seconds of successes used to measure the server's accepted rate."""

    def __init__(
        self,
        rate_limit: float | None = None,
        *,
        store: PacingStore | None = None,
        beta: float = 0.9,
        recover: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        self.rate_limit = rate_limit
        self.beta = beta
        self.recover = recover
        self._clock = clock
        self._sleep = sleep
        self._store: PacingStore = store or InMemoryPacingStore()
        self._cubic_c = (1 - beta) / recover**3
        self._lock = asyncio.Lock()
        self._next_slot = 0.0
        self._successes: deque[float] = deque()
        self._started: float | None = None

    @property
    def state(self) -> PacingState:
        """The shared state (limit, last cut, pause)."""
        return self._store.load()

    def current_rate(self, now: float | None = None) -> float | None:
        """The rate requests may start at right now, or None when unpaced."""
        state = self._store.load()
        if state.limit is None or state.cut_at is None:
            return self.rate_limit
        now = self._clock() if now is None else now
        dt = now - state.cut_at
        rate = state.limit * (1 + self._cubic_c * (dt - self.recover) ** 3)
        rate = max(rate, state.limit * self.beta * 0.5, 0.1)
        if self.rate_limit is not None:
            rate = min(rate, self.rate_limit)
        return rate

    async def acquire(self) -> None:
        """Wait until the next request may start."""
        now = self._clock()
        if self._started is None:
            self._started = now
        state = self._store.load()
        if state.cut_at is None and self.rate_limit is None and now >= state.pause_until:
            return
        async with self._lock:
            while True:
                now = self._clock()
                state = self._store.load()
                rate = self.current_rate(now)
                start = max(now, state.pause_until)
                if rate is not None:
                    interval = 1.0 / rate
                    # Allow catching up a little after oversleeping, never a burst.
                    self._next_slot = max(self._next_slot, now - 2 * interval)
                    start = max(start, self._next_slot)
                if start <= now:
                    if rate is not None:
                        self._next_slot += 1.0 / rate
                    return
                await self._sleep(start - now)

    def on_success(self, sent_at: float) -> None:
        """Record an accepted request (feeds the measured rate)."""
        now = self._clock()
        successes = self._successes
        successes.append(now)
        horizon = now - self.window
        while successes[0] < horizon:
            successes.popleft()

    def measured_rate(self, now: float | None = None) -> float:
        """Accepted requests per second over the last ``window`` seconds."""
        now = self._clock() if now is None else now
        horizon = now - self.window
        count = sum(1 for t in self._successes if t >= horizon)
        started = self._started if self._started is not None else now
        span = max(min(self.window, now - started), 0.05)
        return count / span

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """React to a 429 for a request that started at ``sent_at``."""
        now = self._clock()
        state = self._store.load()
        state = attrs.evolve(state, throttles=state.throttles + 1)
        if retry_after is not None and retry_after > 0:
            state.pause_until = max(state.pause_until, now + min(retry_after, self.window / 4))
        if state.cut_at is None or sent_at >= state.cut_at:
            current = self.current_rate(now)
            measured = self.measured_rate(now)
            base = measured if current is None else min(current, measured)
            state.limit = max(base, 0.5)
            # The cubic curve starts at beta * limit.
            state.cut_at = now
        self._store.save(state)

    def describe(self) -> str:
        """A short human description of the current pace (for progress displays)."""
        rate = self.current_rate()
        if rate is None:
            return "unpaced"
        return f"{rate:,.0f}/s" + (" (stated)" if self.state.limit is None else " (learned)")
