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
import bisect
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
_AHEAD = 1
"""Sends ahead of the count at most at once: the in-flight count of one process."""
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
    """Send times in the window and, once engaged, the window's count (backend clock).

    Counted, not per slot: a sliding log admits a send when fewer than W of the sends
    it admitted are younger than T, whichever slot freed.  So a send goes while fewer
    than ``size`` of this pacer's sends (accepted or still out) are younger than
    ``period``.  Both are upper bounds: the period the lift's, W the sends accepted
    before it.  A send ahead of the count (one more than it allows, half way to the
    shift known too short) bounds the period when accepted (the ``size``-th youngest
    send then was older than T), or raises the shift known too short when refused;
    a counted send refused bounds W.
    """

    __slots__ = (
        "_ahead",
        "_log",
        "_more",
        "_out",
        "_refused",
        "_sent",
        "active",
        "ahead",
        "engaged_at",
        "engaged_once",
        "lowest",
        "margin",
        "period",
        "size",
    )

    def __init__(self) -> None:
        self._log: deque[float] = deque(maxlen=_KEEP)
        self._more = asyncio.Event()  # a send answered, a bound moved, or a stop
        self._sent: list[float] = []  # sends counted in the window, oldest first
        # Sends ahead of the count, by admission: the period bound each tests.
        self._ahead: dict[float, list[float]] = {}
        self._out = 0
        self._refused = 0
        self.period = 0.0
        """T, an upper bound (0: not engaged)."""
        self.lowest = 0.0
        """A shift known too short."""
        self.size = 0
        """W, an upper bound."""
        self.margin = 0.0
        """The arrival spread when engaged: T known to within it is known."""
        self.ahead = 1
        """Sends that may go ahead of the count at once: doubles while they are
        accepted (a fixed window frees every slot at its reset), 1 after a refusal."""
        self.active = False
        """Admissions follow the count."""
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
        ``margin``: the arrival spread, added so that a send does not overtake the
        one whose slot it takes."""
        if self.engaged_once:
            return
        self.engaged_once = True
        period = lift - first_send
        entries = sorted(at for at in self._log if first_send <= at < lift)
        self._log.clear()
        if period <= 0 or lift - wall_start < LONG_WALL * period or len(entries) < _ENTRIES:
            return
        self.period = period + margin
        self.lowest = max(last_refused - first_send, 0.0)
        self.margin = margin
        self.size = len(entries)
        self._sent = [*entries, lift]
        self.active = True
        self.engaged_at = lift

    def accepted(self, sent_at: float) -> None:
        """A success for a send admitted at ``sent_at``."""
        if not self.active:
            self._log.append(sent_at)
            return
        self._refused = 0
        bound = self._answered(sent_at)
        if bound is not None:
            self.period = max(min(self.period, bound), self.lowest)
            self.ahead = min(self.ahead * 2, _AHEAD)
        self._more.set()

    def refused(self, sent_at: float) -> None:
        """A 429 for a send admitted at ``sent_at``: not in the server's log."""
        if not (self.active and sent_at > self.engaged_at):
            return
        bound = self._answered(sent_at)
        self._forget(sent_at)
        self._more.set()
        if bound is not None:
            self.lowest = max(self.lowest, min(bound, self.period))
            self.ahead = 1
            return
        self.size = max(min(self.size, self._count(sent_at, self.period)), 1)
        self._refused += 1
        if self._refused >= _REFUSALS:
            self.stop()

    def errored(self, sent_at: float) -> None:
        """An answer that was neither: taken as not in the server's log."""
        if self.active and sent_at > self.engaged_at:
            self._answered(sent_at)
            self._forget(sent_at)
            self._more.set()

    def stop(self) -> None:
        """The pace takes over again."""
        self.active = False
        self._sent.clear()
        self._ahead.clear()
        self._out = 0
        self._more.set()  # waiters go back to the pace

    def _forget(self, sent_at: float) -> None:
        i = bisect.bisect_left(self._sent, sent_at)
        if i < len(self._sent) and self._sent[i] == sent_at:
            del self._sent[i]

    def _answered(self, sent_at: float) -> float | None:
        """The period bound a send ahead of the count tested (None: counted)."""
        bounds = self._ahead.get(sent_at)
        if not bounds:
            return None
        bound = bounds.pop()
        if not bounds:
            del self._ahead[sent_at]
        self._out -= 1
        return bound

    def _count(self, now: float, period: float) -> int:
        """Sends younger than ``period`` at ``now`` (sent before it)."""
        sent = self._sent
        return bisect.bisect_left(sent, now) - bisect.bisect_right(sent, now - period)

    def _frees(self, now: float, period: float) -> float:
        """When fewer than ``size`` sends are younger than ``period``."""
        sent = self._sent
        young = bisect.bisect_right(sent, now - period)
        excess = len(sent) - young - self.size
        return now if excess < 0 else sent[young + excess] + period

    def _probing(self) -> bool:
        return self._out < self.ahead and self.period - self.lowest > self.margin + _KNOWN

    def _due(self, now: float) -> float:
        """When the next send may go: by the count, or ahead of it (at the period half
        way between the one known too short and the one known enough)."""
        due = self._frees(now, self.period)
        if self._probing():
            due = min(due, self._frees(now, (self.lowest + self.period) / 2))
        return max(due, now)

    def admit_now(self, now: float) -> float | None:
        """Admit a send due at ``now``: the admission time, or None."""
        if not self.active or self._due(now) > now:
            return None
        sent = self._sent
        del sent[: bisect.bisect_right(sent, now - self.period)]  # (never counted again)
        if len(sent) >= self.size:  # ahead of the count: the size-th youngest bounds T
            self._ahead.setdefault(now, []).append(now - sent[len(sent) - self.size])
            self._out += 1
        sent.append(now)
        return now

    async def admit(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[Any]]
    ) -> float | None:
        """Wait for a send to be due (``admit_now``): the admission time (``clock``'s,
        the backend's), or None once the replay stopped (go and be paced)."""
        while self.active:
            now = clock()
            at = self.admit_now(now)
            if at is not None:
                return at
            self._more.clear()
            more = asyncio.ensure_future(self._more.wait())
            nap = asyncio.ensure_future(sleep(min(self._due(now) - now, _IDLE)))
            try:
                await asyncio.wait((more, nap), return_when=asyncio.FIRST_COMPLETED)
            finally:
                more.cancel()
                nap.cancel()
        return None
