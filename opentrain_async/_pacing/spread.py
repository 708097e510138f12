"""The arrival spread: how far apart in time the server sees requests sent together.

Requests sent evenly reach the server bunched when their latency varies: one sent later
may arrive first.  A limiter with no burst (a token bucket of one) then refuses some of
them at any rate, so such a 429 says nothing about the limit.  ``ArrivalSpread`` keeps a
running estimate of the spread from the round trips a pacer sees (local to one pacer:
its own network path) and tells a 429 the spread explains from one that a lower limit
does.
"""

from __future__ import annotations

__all__ = ["OVERLAP", "ArrivalSpread"]

_WEIGHT = 1 / 16  # EWMA weight per answer: the estimate follows the last ~16 round trips
_LONGEST = 3600.0  # seconds: a longer round trip is a clock's jump (see ``answered``)
OVERLAP = 1.0
"""A lone 429 is the spread's once sends come this many per spread or more (spread x
rate >= 1: consecutive sends reach the server in any order).  Tuned on seeds 0-499 of
``benchmarks.family_sim`` (with a refused-share guard since dropped as inert): 0.5 gave the
same figures as 1, 2 a worst draw of 18.55x instead of 16.06x."""


class ArrivalSpread:
    """Round trips (admission to answer) as an EWMA mean and mean absolute deviation,
    and whether the last answer was accepted."""

    __slots__ = ("_deviation", "_mean", "last_ok")

    def __init__(self) -> None:
        self._mean: float | None = None
        self._deviation = 0.0
        self.last_ok = False

    @property
    def seconds(self) -> float:
        """The estimated spread of arrivals.  A one-way latency varying uniformly over
        w spreads round trips over 2w, whose mean absolute deviation is 2w / 4: w is
        twice it."""
        return 2 * self._deviation

    def answered(self, round_trip: float, accepted: bool) -> None:
        """Count one answer that came ``round_trip`` seconds after its admission.  One
        over ``_LONGEST`` either way is no network's: its admission time is on the
        clock of a backend since replaced (Redis ``TIME`` and a process's monotonic
        clock differ by decades); it is not counted."""
        self.last_ok = accepted
        if abs(round_trip) > _LONGEST:
            return
        mean = self._mean
        if mean is None:
            self._mean = round_trip
        else:
            self._mean = mean + _WEIGHT * (round_trip - mean)
            self._deviation += _WEIGHT * (abs(round_trip - mean) - self._deviation)

    def explains(self, rate: float) -> bool:
        """A 429 just after an accepted answer, for a request sent at ``rate`` (per
        second), is the spread's: sends came closer together than their arrivals
        spread.  Two 429s in a row are a limit's.  Read before ``answered``."""
        return self.last_ok and self.seconds * rate >= OVERLAP
