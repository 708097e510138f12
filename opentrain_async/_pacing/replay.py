"""A sliding window's self-clock: accepted sends replayed one period later (local).

A sliding log of W per T frees each slot exactly T after the request that took it
was admitted.  A client that sends again at each of its own accepted send times
shifted by T keeps the log full and never waits for a slot already free: given what
it sent so far, no sender does better, and it needs neither W nor the limiter's
phase, only T.  A fixed window met in one burst at its reset gives the same schedule
as "W at each reset" (``allowance``).

Where T comes from: a hint that does not say when the limiter reopens (none, or a
rounded second) leaves the pacer to find the wall's end by probing (``probe``).  The
first wall of a pacer met with no earlier one began when its sends filled the log,
whose oldest entry was then its first accepted send (if the log was filled within
one period); the probe that lifts the wall is admitted no sooner than that entry's
slot frees.  So T is at most the lift minus the first accepted send.  The replay is
engaged when the wall is long against that period (a token bucket's walls are a
token long) and stopped by two refusals in a row (not a sliding window, or a limit
that moved): the pace takes over again.  Local to one pacer: each process replays
its own sends, and together they replay the window's log.  Not in the shared state.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["LONG_WALL", "SelfClock"]

LONG_WALL = 0.25
"""The replay is engaged when the wall held at least this share of the period it
implies.  A sliding window filled by slow start in a share s of its period walls for
1 - s of it; a token bucket's wall lifts a token later, a small share of the time
since the first send.  A quarter: slow start fills a window within three quarters of
its period only when that period is a few round trips long or more."""
_REFUSALS = 2
"""Replayed sends refused in a row that stop the replay: one is the arrival spread's
(a send that overtook the one whose slot it takes), two in a row the limit's."""
_IDLE = 1.0
"""Seconds a request waits for a replay slot when none is left before the pace takes
over: longer than any round trip of the family (200 ms +-50%), as ``ANSWER_WAIT``."""
_KEEP = 20_000
"""Accepted send times kept: more than any window the family draws (1,000), bounded
so that a client that runs for days does not grow without end."""


class SelfClock:
    """Accepted send times and, once engaged, the replay's slots (backend clock)."""

    __slots__ = (
        "_log",
        "_more",
        "_refused",
        "_slots",
        "active",
        "engaged_at",
        "engaged_once",
        "period",
    )

    def __init__(self) -> None:
        self._log: deque[float] = deque(maxlen=_KEEP)
        self._more = asyncio.Event()  # a slot was added
        self._slots: list[float] = []  # a heap of replay slots
        self._refused = 0
        self.period = 0.0
        """The replay's shift T (0: not engaged)."""
        self.active = False
        """Admissions come from the replay's slots."""
        self.engaged_once = False
        """Engaged at most once per pacer: only the first wall's oldest entry is known."""
        self.engaged_at = float("inf")
        """The lift that engaged it: sends admitted after it are the replay's."""

    def accepted(self, sent_at: float) -> None:
        """A success for a send admitted at ``sent_at``: its slot frees one period on."""
        self._refused = 0
        if self.active:
            heapq.heappush(self._slots, sent_at + self.period)
            self._more.set()
        else:
            self._log.append(sent_at)

    def lifted(self, first_send: float, wall_start: float, lift: float, margin: float) -> None:
        """The pacer's first wall lifted for a probe admitted at ``lift``; the wall began
        with a refusal of a send admitted at ``wall_start``, the first accepted send was
        admitted at ``first_send``.  ``margin``: the arrival spread, added so that a
        replay never overtakes the send whose slot it takes."""
        if self.engaged_once:
            return
        self.engaged_once = True
        period = lift - first_send
        if period <= 0 or lift - wall_start < LONG_WALL * period:
            self._log.clear()
            return
        self.period = period + margin
        self.active = True
        self.engaged_at = lift
        self._slots = [at + self.period for at in self._log if at >= first_send]
        heapq.heapify(self._slots)
        self._log.clear()

    def refused(self, sent_at: float) -> None:
        """A 429 for a send admitted at ``sent_at``: a replayed one's slot is not in
        the server's log, so it is not replayed; two in a row stop the replay."""
        if not (self.active and sent_at > self.engaged_at):
            return
        self._refused += 1
        if self._refused >= _REFUSALS:
            self.stop()

    def stop(self) -> None:
        """The pace takes over again."""
        self.active = False
        self._slots.clear()
        self._more.set()  # waiters go back to the pace

    def admit_now(self, now: float) -> float | None:
        """Take a slot due at ``now`` (the fast path): the admission time, or None."""
        slots = self._slots
        if self.active and slots and slots[0] <= now:
            heapq.heappop(slots)
            return now
        return None

    async def admit(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[Any]]
    ) -> float | None:
        """Claim the earliest slot and sleep until it: the admission time (``clock``'s,
        the backend's), or None once the replay stopped (go and be paced).  With no
        slot left, wait for an answer to add one, at most ``_IDLE`` seconds: every
        send refused or lost, nothing is left to replay."""
        while self.active:
            if self._slots:
                slot = heapq.heappop(self._slots)
                wait = slot - clock()
                if wait > 0:
                    await sleep(wait)
                return clock()
            self._more.clear()
            more = asyncio.ensure_future(self._more.wait())
            nap = asyncio.ensure_future(sleep(_IDLE))
            try:
                await asyncio.wait((more, nap), return_when=asyncio.FIRST_COMPLETED)
            finally:
                more.cancel()
                nap.cancel()
            if not self._slots and not more.done():
                self.stop()
        return None
