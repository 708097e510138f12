"""A client that knows the limit: the floor any pacer can be judged against (issue 19).

The oracle is told the draw's true limit schedule (kind, rate and burst or W per T, the
changes and when) and the mean latency, but not each request's own latency.  It keeps a
mirror of the server's limiter in arrival time and sends each request when the mirror
admits it at the moment the request would arrive (send time + its own CPU queue + half
the mean round trip): a bucket's token times, a window's reset (W at once).  A 429
gives its place back in the mirror (the server never counted it) and the request is
sent again at the next admission.  Every process shares the one mirror (perfect
coordination, which no real fleet has).

It runs in ``family_sim._run`` beside the other runners, on the same network: per-request
jitter, timers firing late, one CPU, the same in-flight cap.  So what it loses to the
strict ideal is lost to what no client knows (when each request will arrive) and to the
timers (one sleeper waits for the mirror at a time, so a bucket of one token pays a
timer's lateness per token: on a loaded loop every timer is late together).  It is a
floor for clients that aim, not a proof that nothing could do better.

``oracle-late`` is the same client also told the jitter's bound: it aims every arrival
the whole spread of a one-way trip (``jitter x latency``) after the admission (all but
the first, which starts the limiter's clock), so no request can arrive early even when
that first one came late.  It trades time for 429s: nothing is refused on a window,
while a bucket with a burst too small to absorb the jitter still refuses some (a late
token is not banked).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from opentrain_async.testing._limits import _BucketLimiter, _ScheduleLimiter, _WindowLimiter

from .family import Draw

__all__ = ["ORACLES", "OraclePlan"]

ORACLES = ("oracle", "oracle-late")
AIM_AFTER = 1e-6
"""Seconds added to every wait for the mirror, so a request arrives just after its
admission: a token computed in floating point at exactly its time can read 0.999... of
a token (the limiter's own floor on a wait is the same 1 us)."""


class OraclePlan:
    """The oracle's sends: a mirror of the draw's limiter in arrival time, fed the moment
    each request would arrive had it the mean latency."""

    def __init__(
        self,
        d: Draw,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        cpu_free: Callable[[], float],
        *,
        cpu_cost: float,
        late: bool = False,
    ) -> None:
        self._mirror = _ScheduleLimiter(d.schedule())
        self._clock = clock
        self._sleep = sleep
        self._cpu_free = cpu_free
        self._cpu_cost = cpu_cost
        self._half = d.latency / 2
        self._margin = d.jitter * d.latency if late else 0.0
        self._last: float | None = None
        self._queue = asyncio.Lock()

    def _arrival(self) -> float:
        """When a request sent now would arrive at the mean latency (after the CPU queue),
        less the margin (all but the first: it starts the limiter's clock, and a margin
        on it would move the clock with it); in time order, as the limiter needs."""
        at = max(self._clock(), self._cpu_free()) + self._cpu_cost + self._half
        if self._last is None:
            return at
        return max(self._last, at - self._margin)

    def _take(self) -> tuple[float, float | None]:
        """Offer a request sent now to the mirror: its arrival time, and None when the
        mirror counted it, else the wait until it would."""
        at = self._arrival()
        self._last = at
        return at, self._mirror.acquire(at)

    async def turn(self, *, again: bool = False) -> float:
        """Sleep (as late as the loop's timers) until a request sent now would arrive
        when the mirror admits one, count it there, and return that time (for
        ``refused``).  The caller sends at once, with no await in between.  One request
        waits for the mirror at a time (the others queue), so each admission wakes one
        sleeper, not all of them; a request sent ``again`` after a 429 first tries the
        place its refusal just gave back, which the queue's sleeper would miss."""
        if again:
            at, wait = self._take()
            if wait is None:
                return at
        async with self._queue:
            at, wait = self._take()
            while wait is not None:
                await self._sleep(wait + AIM_AFTER)
                at, wait = self._take()
            return at

    def refused(self, at: float) -> None:
        """The request counted at ``at`` was refused: the server did not count it, so
        the mirror gives its place back (unless the limit has changed since)."""
        mirror = self._mirror
        if mirror._start is None or at < mirror._start + mirror._steps[mirror._index][0]:
            return  # counted by an earlier step: the server's current one never saw it
        inner = mirror._inner
        if isinstance(inner, _BucketLimiter):
            inner._tokens = min(inner._burst, inner._tokens + 1.0)
        elif isinstance(inner, _WindowLimiter):
            if inner._index == math.floor((at - inner._origin) / inner._window):
                inner._count -= 1
        elif at in inner._log:
            inner._log.remove(at)
