"""A per-process ``rate_limit`` over a shared schedule: the cap stays in its process."""

from __future__ import annotations

import math

import attrs

from .backend import Reservation
from .state import PacingTuning

__all__ = ["ProcessCap"]


class ProcessCap:
    """A per-process ``rate_limit`` over shared slots (GCRA on the local clock).

    Redis paces everyone at the shared rate; this paces one process at its own cap on
    top: it asks Redis only for the slots its cap allows within the horizon, and
    spaces the slots it gets at least ``1/cap`` apart.  While its next slot is
    beyond the horizon it answers "not yet" itself (successes carried to the next
    call), so a capped process costs the shared schedule nothing while it waits."""

    __slots__ = ("carried", "cuts", "next", "offset", "pause_until")

    def __init__(self) -> None:
        self.next = -math.inf  # local time of this process's next slot under its cap
        self.carried = 0  # successes not yet counted in Redis
        self.offset: float | None = None  # Redis time minus local time, last answer
        self.cuts = 0
        self.pause_until = 0.0

    def _start(self, now: float, cap: float, tuning: PacingTuning) -> float:
        return max(self.next, now - min(tuning.tolerance, 1.0 / cap))

    def wait(self, now: float, cap: float, tuning: PacingTuning) -> Reservation | None:
        """No slot, and when to ask again, while the next is beyond the horizon."""
        if self.offset is None or self.next <= now + tuning.horizon:
            return None
        return Reservation(
            now=now + self.offset,
            first=self.next + self.offset,
            interval=1.0 / cap,
            count=0,
            rate=cap,
            cuts=self.cuts,
            pause_until=self.pause_until,
        )

    def slots(self, now: float, cap: float, tuning: PacingTuning) -> int:
        """How many slots the cap allows within the horizon (at least one)."""
        start = self._start(now, cap, tuning)
        return max(1, 1 + math.floor((now + tuning.horizon - start) * cap))

    def take(self, got: Reservation, now: float, cap: float, tuning: PacingTuning) -> Reservation:
        """``got`` from Redis, no faster than ``cap``."""
        offset = got.now - now
        interval = max(got.interval, 1.0 / cap)
        first = max(got.first - offset, self._start(now, cap, tuning))
        if got.count:
            self.next = first + got.count * interval
        rate = cap if got.rate is None else min(got.rate, cap)
        return attrs.evolve(got, first=first + offset, interval=interval, rate=rate)

    def seen(self, got: Reservation, now: float) -> None:
        self.offset = got.now - now
        self.cuts, self.pause_until = got.cuts, got.pause_until
