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
_ENTRIES = 10
"""Accepted sends before the wall needed to replay them: a window admits a burst of
them, a bucket one per token (``pause.WINDOW_SLOTS``); with a handful, several
processes sharing a small bucket took its walls for a window's (seed 70, 38/s and 14
processes: 1.76x -> 3.20x)."""
_KNOWN = 0.001
"""Seconds: a period bracketed this closely (beyond the arrival spread) is known, and
no send goes ahead of its slot any more: a timer's lateness is of this order."""
_KEEP = 20_000
"""Accepted send times kept: more than any window the family draws (1,000), bounded
so that a client that runs for days does not grow without end."""


class SelfClock:
    """Accepted send times and, once engaged, the replay's entries (backend clock)."""

    __slots__ = (
        "_ahead",
        "_entries",
        "_log",
        "_more",
        "_out",
        "_quota",
        "_refused",
        "_tests",
        "active",
        "ahead",
        "engaged_at",
        "engaged_once",
        "lowest",
        "margin",
        "period",
    )

    def __init__(self) -> None:
        self._log: deque[float] = deque(maxlen=_KEEP)
        self._more = asyncio.Event()  # an entry, a shorter period or a stop
        self._entries: list[float] = []  # a heap of accepted sends not yet replayed
        # Sends ahead of their slots, by admission: the period each tries, and whether
        # it is one of the test's (several may share an admission time).
        self._ahead: dict[float, list[tuple[float, bool]]] = {}
        self._out = 0  # sends ahead of their slots, not yet answered
        self._refused = 0
        self._tests = 0  # the test's sends not yet answered
        self._quota = 0  # the test's sends not yet sent (-1: not counted yet)
        self.period = 0.0
        """The replay's shift T, an upper bound (0: not engaged)."""
        self.lowest = 0.0
        """A shift known too short (a send that early was refused)."""
        self.margin = 0.0
        """The arrival spread when engaged: T known to within it is known."""
        self.ahead = 1
        """Sends that may go ahead of their slots at once: doubles while they are
        accepted (a fixed window frees all its slots at its reset), 1 after a refusal."""
        self.active = False
        """Admissions come from the replay's slots."""
        self.engaged_once = False
        """Engaged at most once per pacer: only the first wall's oldest entry is known."""
        self.engaged_at = float("inf")
        """The lift that engaged it: sends admitted after it are the replay's."""

    def lifted(
        self, first_send: float, wall_start: float, last_refused: float, lift: float, margin: float
    ) -> None:
        """The pacer's first wall lifted for a probe admitted at ``lift``; the wall's
        first refusal was of a send admitted at ``wall_start``, its last at
        ``last_refused``; the first accepted send was admitted at ``first_send``.
        ``margin``: the arrival spread, added so that a replay does not overtake the
        send whose slot it takes."""
        if self.engaged_once:
            return
        self.engaged_once = True
        period = lift - first_send
        entries = [at for at in self._log if at >= first_send]
        self._log.clear()
        if period <= 0 or lift - wall_start < LONG_WALL * period or len(entries) < _ENTRIES:
            return
        self.period = period + margin
        self.lowest = max(last_refused - first_send, 0.0)
        self.margin = margin
        self.active = True
        self.engaged_at = lift
        self._entries = entries
        heapq.heapify(self._entries)
        self._quota = -1

    def accepted(self, sent_at: float) -> None:
        """A success for a send admitted at ``sent_at``: its slot frees one period on;
        one sent ahead of its slot shows the period is at most that."""
        self._refused = 0
        if not self.active:
            self._log.append(sent_at)
            return
        tried, test = self._answered(sent_at)
        if test:  # (a slot free, not necessarily this entry's: no bound learned)
            self._tests -= 1
            if not self._tests and not self._quota:  # all accepted: not sliding
                self.stop()
                return
        elif tried is not None:
            self.period = min(self.period, tried)
            self.ahead = min(self.ahead * 2, _KEEP)
        heapq.heappush(self._entries, sent_at)
        self._more.set()

    def refused(self, sent_at: float) -> None:
        """A 429 for a send admitted at ``sent_at``.  One sent ahead of its slot shows
        the period is longer: its entry goes back.  A replayed one's slot is not in
        the server's log, so it is not replayed; two in a row stop the replay."""
        if not (self.active and sent_at > self.engaged_at):
            return
        tried, test = self._answered(sent_at)
        if test:  # a sliding window: the test is over
            self._tests = self._quota = 0
            tried = None  # (every free slot taken, not this entry's: no bound)
        if tried is not None:
            self.lowest = max(self.lowest, tried)
            self.ahead = 1
            heapq.heappush(self._entries, sent_at - tried)
            self._more.set()
            return
        self._refused += 1
        if self._refused >= _REFUSALS:
            self.stop()

    def errored(self, sent_at: float) -> None:
        """An answer that was neither: a send ahead of its slot is no longer out."""
        tried, test = self._answered(sent_at)
        if test:  # the test says nothing now: over
            self._tests = self._quota = 0
        if tried is not None:
            self._more.set()

    def stop(self) -> None:
        """The pace takes over again."""
        self.active = False
        self._entries.clear()
        self._ahead.clear()
        self._out = self._tests = self._quota = 0
        self._more.set()  # waiters go back to the pace

    def _probing(self) -> bool:
        return self._out < self.ahead and self.period - self.lowest > self.margin + _KNOWN

    def _due(self) -> float | None:
        """When the next send may go: its slot, or earlier ahead of it (half way
        between the shift known too short and the one known enough)."""
        if not self._entries:
            return None
        oldest = self._entries[0]
        if self._probing():
            return oldest + (self.lowest + self.period) / 2
        return oldest + self.period

    def admit_now(self, now: float) -> float | None:
        """Admit a send due at ``now``: the admission time, or None."""
        if self._quota and self._entries and self.active:
            return self._send_test(now)
        due = self._due() if self.active else None
        if due is None or due > now:
            return None
        oldest = heapq.heappop(self._entries)
        if oldest + self.period > now:  # ahead of its slot
            self._sent_ahead(now, now - oldest, test=False)
        return now

    def _send_test(self, now: float) -> float:
        """The replay's first sends go at once, one more than a sliding window whose
        period is at least ``lowest`` can have freed: it refuses one of them at
        least, while a fixed window (or a bucket, or a limit that rose) that freed
        every slot at once accepts them all, and the pace takes over (replaying the
        first window's ramp there lost to it: seed 464, a fixed window of 471 per
        1.96 s, 1.32x -> 1.76x)."""
        if self._quota < 0:
            self._quota = sum(1 for at in self._entries if at + self.lowest <= now) + 1
        oldest = heapq.heappop(self._entries)
        self._sent_ahead(now, now - oldest, test=True)
        self._tests += 1
        self._quota -= 1
        return now

    def _sent_ahead(self, now: float, tried: float, test: bool) -> None:
        self._ahead.setdefault(now, []).append((tried, test))
        self._out += 1

    def _answered(self, sent_at: float) -> tuple[float | None, bool]:
        """The period a send ahead of its slot tried, and whether it was the test's
        (None, False: it went at its slot)."""
        sent = self._ahead.get(sent_at)
        if not sent:
            return None, False
        tried, test = sent.pop()
        if not sent:
            del self._ahead[sent_at]
        self._out -= 1
        return tried, test

    async def admit(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[Any]]
    ) -> float | None:
        """Wait for a send to be due (``admit_now``): the admission time (``clock``'s,
        the backend's), or None once the replay stopped (go and be paced).  With
        nothing left to replay, wait for an answer to add some, at most ``_IDLE``
        seconds: every send refused or lost, the pace takes over."""
        while self.active:
            now = clock()
            at = self.admit_now(now)
            if at is not None:
                return at
            due = self._due()
            self._more.clear()
            more = asyncio.ensure_future(self._more.wait())
            nap = asyncio.ensure_future(sleep(_IDLE if due is None else due - now))
            try:
                await asyncio.wait((more, nap), return_when=asyncio.FIRST_COMPLETED)
            finally:
                more.cancel()
                nap.cancel()
            if due is None and not self._entries and not more.done():
                self.stop()
        return None
