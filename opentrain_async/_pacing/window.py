"""The slow-start window: requests in flight before the first 429 (local to one pacer).

Until the server has said where its limit is, nothing is paced, but requests in flight
ramp up as in TCP slow start (the window grows by ``growth`` per accepted request, and
doubles per ``doubling`` seconds spent full where round trips are long), and a server
burst, say a fixed window filling up, is not met by a wall of concurrent requests.
Waiters are served first come, first served.  Once paced, the window lets everyone
through: the rate decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentrain_async._waiters import Waiters

__all__ = ["SlowStartWindow"]


class SlowStartWindow:
    """Counts requests in flight and holds back those beyond the window."""

    def __init__(
        self,
        initial: int,
        growth: float,
        doubling: float | None = None,
        clock: Callable[[], float] = time.monotonic,
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
