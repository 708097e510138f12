"""The slow-start window: requests in flight before the first 429 (local to one pacer).

Until the server has said where its limit is, nothing is paced, but requests in flight
ramp up as in TCP slow start (the window grows by ``growth`` per accepted request, and
doubles per ``doubling`` seconds spent full where round trips are long), and a server
burst, say a fixed window filling up, is not met by a wall of concurrent requests.
Waiters are served first come, first served.  Once paced, the window lets everyone
through: the rate decides.

Requests in flight follow Little's law: a window of ``size`` over a round trip of
``round_trip()`` seconds is a rate of ``size / round_trip``, and the window's sends are
spread evenly (``take_slot``), not sent together as answers come back; the first 429
is estimated from it too (``accepted_rate``: the successes of the last round trip).  A
window's worth sent at once reaches the server within the latency's jitter, and a
bucket with a small burst refused most of it at a fraction of its rate (a bucket of
300/s with a burst of 10, 100 ms away, drew its first 429s at 200/s).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from opentrain_async._waiters import Waiters

__all__ = ["SlowStartWindow"]

_AHEAD = 2.0
"""The window's sends are spread at this many times its rate, size / round trip (as
Linux paces TCP's slow start at twice cwnd / srtt): the window grows while its sends
go out, and at its own rate a window's room would be used a round trip late, a
doubling behind (seeds 0-499: a bucket's burst reset by a change at 0.45 s was
missed, 1.5x -> 6.9x)."""


class SlowStartWindow:
    """Counts requests in flight and holds back those beyond the window."""

    def __init__(
        self,
        initial: int,
        growth: float,
        doubling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        round_trip: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.size: float = initial
        """Requests that may be in flight (the larger of the two growths)."""
        self.in_flight = 0
        self._growth = growth
        self._earned: float = initial  # grown by successes
        self._doubling = doubling
        self._clock = clock
        self._timed: float = initial  # grown by time spent full
        self._full_since: float | None = None
        self._waiters: Waiters[bool] = Waiters()
        self._round_trip = round_trip
        self._next_slot = float("-inf")  # the earliest the next send may start
        self._accepted_at: deque[float] = deque()  # answers accepted, the last round trip
        self.open = False
        """True once paced: nobody is held back any more (the rate decides)."""

    def count_in(self) -> None:
        """Count a request the rate admitted (once paced): it will ``leave`` too."""
        self.in_flight += 1

    def _grow_with_time(self) -> None:
        """Doubles per ``doubling`` seconds spent full: where round trips are long,
        successes come slowly and time grows the window instead.  Time counts from one
        call to the next while full, at most one doubling per call: a loop stalled for
        half a second (a blocking call) did not learn that the server takes more."""
        if self._doubling is None or (self.in_flight < self.size and not self._waiters):
            self._full_since = None
            return
        now = self._clock()
        since = self._full_since
        self._full_since = now
        if since is None:
            return
        self._timed *= 2 ** (min(now - since, self._doubling) / self._doubling)
        if self._timed > self.size:
            self.size = self._timed

    def try_send(self, now: float) -> float | None:
        """Count a request in if its slot has come and the window has room (``now``),
        else None."""
        if now < self._next_slot or not self.try_enter():
            return None
        return self.take_slot(now)

    async def spaced(
        self, sleep: Callable[[float], Awaitable[Any]], pause_until: Callable[[], float]
    ) -> float | None:
        """Wait for the slot of a request just counted in (``enter``), and for any pause
        begun meanwhile; returns the clock then, or None when the window opened
        meanwhile (a 429, this process's or another's, set a pace: go and be paced;
        sent unpaced, the window's sends still waiting for their slots met the limit
        just found).  Cancelled, it leaves."""
        try:
            slot = self.take_slot(self._clock())
            while (wait := max(slot, pause_until()) - self._clock()) > 0:
                await sleep(wait)
        except asyncio.CancelledError:
            self.leave(grow=False)
            raise
        if self.open:
            self.in_flight -= 1  # counted in again by the pace
            return None
        return self._clock()

    def take_slot(self, now: float) -> float:
        """When a request just counted in may start: ``round_trip / (_AHEAD * size)``
        after the previous send, so a window's sends are spread evenly, not sent
        together (at once before any round trip is measured)."""
        slot = max(now, self._next_slot)
        trip = self._round_trip()
        if trip is not None and trip > 0:
            self._next_slot = slot + trip / (_AHEAD * self.size)
        return slot

    def accepted_rate(self, now: float) -> float | None:
        """Little's law: the successes answered in the last round trip, per second (what
        the server accepted while the request answered now was out); None before any
        round trip is measured.  Over at least ``doubling`` seconds: the window grows
        no faster, and over a shorter span (a round trip of 1 ms) a few answers that
        came together read as thousands per second (seeds 0-499: a bucket of 41.5/s
        8 ms away, 12% -> 116% 429s)."""
        trip = self._span()
        if trip is None:
            return None
        self._forget(now - trip)
        return len(self._accepted_at) / trip

    def _span(self) -> float | None:
        trip = self._round_trip()
        if trip is None or trip <= 0:
            return None
        return max(trip, self._doubling or 0.0)

    def _forget(self, before: float) -> None:
        answers = self._accepted_at
        while answers and answers[0] < before:
            answers.popleft()

    def try_enter(self) -> bool:
        """Count a request in if the window has room and nobody is waiting before it."""
        self._grow_with_time()
        if self.in_flight < self.size and not self._waiters:
            self.in_flight += 1
            return True
        return False

    async def enter(self) -> bool:
        """Wait in line for room; True when counted in, False when the window opened
        meanwhile (go and be paced)."""
        if self.open:
            return False
        if self.try_enter():
            return True
        return await self._waiters.wait(on_abandoned=self._give_back)

    def _give_back(self, counted_in: bool) -> None:
        """A waiter cancelled after it was handed room: pass the room on."""
        if counted_in:
            self.leave(grow=False)

    def leave(self, grow: bool) -> None:
        """One request is over (``grow``: it was accepted): hand its room on."""
        self.in_flight -= 1
        if grow and not self.open:
            now = self._clock()
            self._accepted_at.append(now)
            span = self._span()  # (kept to the last span: a job never refused sends millions)
            if span is not None:
                self._forget(now - span)
            self._earned += self._growth
            if self._earned > self.size:
                self.size = self._earned
        self._grow_with_time()
        if self.open:
            self._waiters.wake_all(False)
            return
        while self._waiters and self.in_flight < self.size:
            self.in_flight += 1  # hand the room over
            if not self._waiters.wake(True):
                self.in_flight -= 1  # nobody was left waiting after all

    def open_up(self) -> None:
        """Paced from now on: release every waiter to the rate."""
        self.open = True
        self._waiters.wake_all(False)
