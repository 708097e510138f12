"""The arrival spread: how far apart in time the server sees requests sent together.

Requests sent evenly reach the server bunched when their latency varies: one sent later
may arrive first.  A limiter with no burst (a token bucket of one) then refuses some of
them at any rate, so such a 429 says nothing about the limit.  ``ArrivalSpread`` keeps a
running estimate of the spread from the round trips a pacer sees (local to one pacer:
its own network path) and tells a 429 the spread explains from one that a lower limit
does.  Once lone 429s came for requests sent under the learned limit (a bucket with a
burst refuses none there: ``below``), the limiter is taken for a one-token bucket, and a
low refused share then says its limit is far above the rate: 429s two in a row
(``RUN_SHARE``) and lone ones with sends further apart than the spread
(``ONE_TOKEN_OVERLAP``) are the spread's, and a very low share says to climb (``far``).
On a backend shared by processes the refused share is all of theirs (``shared_answers``).
"""

from __future__ import annotations

__all__ = [
    "CLIMB_SHARE",
    "EVIDENCE",
    "ONE_TOKEN_OVERLAP",
    "OVERLAP",
    "RUN_SHARE",
    "SHARED_EVIDENCE",
    "UNDER",
    "ArrivalSpread",
]

_WEIGHT = 1 / 16  # EWMA weight per answer: the estimate follows the last ~16 round trips
_SHARE_WEIGHT = 1 / 32  # the refused share follows the last ~32 answers (runs of 429s)
_LONGEST = 3600.0  # seconds: a longer round trip is a clock's jump (see ``answered``)
_LONG_RUN = 3  # this many 429s in a row are a limit's: the evidence of one token is dropped
OVERLAP = 1.0
"""A lone 429 is the spread's once sends come this many per spread or more (spread x
rate >= 1: consecutive sends reach the server in any order).  Tuned on seeds 0-499 of
``benchmarks.family_sim`` (with a refused-share guard since dropped as inert): 0.5 gave the
same figures as 1, 2 a worst draw of 18.55x instead of 16.06x."""
ONE_TOKEN_OVERLAP = 0.25
"""For a one-token bucket (``ArrivalSpread.one_token``) a lone 429 is the spread's from
this spread x rate on, not ``OVERLAP``: the spread is an estimate from round trips,
and sends go in bunches, so such a bucket refuses lone ones below 1 too (seed 2574 of
``benchmarks.family_sim``'s 2 s family, 1,382/s burst 1, 9 ms +-45%: at 120-140/s the
spread x rate was 0.6, and each lone 429, one every 0.5-3 s, cut the rate to the one
that drew it: 12.17x; 7.15x without the cut).  Not 0: where arrivals do not spread a
one-token bucket refuses only above its rate, like any other (a window become a 10/s
bucket, answers immediate: ``tests/test_pacing_window_changes.py``).  Tuned on the
burst 1-3 buckets of seeds 0-3999 of the 2 s family: 0 / 0.25 / 0.5 made 40 / 37 / 32
draws faster by 2%+, and 34 / 28 / 25 draws' 429 shares rose."""
RUN_SHARE = 0.25
"""A 429 after another one is the spread's too, for a one-token bucket (``EVIDENCE``),
while under this share of recent answers was refused.  Arrivals that random meet a
one-token bucket of capacity R as a loss system (M/D/1/1): at a send rate l it refuses
the share l / (l + R), so R = l (1 - share) / share, three times the rate or more here.
Before, every second 429 in a row cut (seed 3623 of ``benchmarks.family_sim``: a
3,235/s bucket, 19 ms +-41%, cut every 0.1-0.2 s at 400-1,000/s).  Unguarded it held
buckets with a burst above their limit, where they too refuse a few percent (branch
``collapse``)."""
UNDER = 0.97
"""A 429 for a request sent under this share of the learned limit (past the curve's
origin, past the first cut after the search) is evidence of a one-token bucket: a bucket
with a burst refuses nothing below its rate.  Tuned on seeds 0-3999 (burst 1-3) and
1000-1499 of ``benchmarks.family_sim``: 0.95 and 0.99 gave about the same."""
EVIDENCE = 2
"""Lone 429s under the limit (``UNDER``) before runs of 429s are read as a one-token
bucket's.  1 moved more draws both ways, 3 fewer."""
SHARED_EVIDENCE = 1
"""``EVIDENCE`` for a pacer on a shared backend (Redis): the curve is shared, the
evidence is each process's own, from its own answers, so with N processes each lone 429
under the limit reaches one process in N, and each needs its own two; until then that
process's lone 429s cut the shared curve the others read as a one-token bucket's.  Seed
1810 of ``benchmarks.family_sim``'s 2 s family (650/s burst 1, header hints, 62 ms
+-23%, 10 processes, 11.92x), traced 429 by 429: from 9 s on, four processes held the
evidence and let lone 429s be, while the ones still holding one piece (one process at
10.1 s and 10.7 s, another at 12.5 s and 13.6 s, a third at 14.2 s) each cut it,
72 -> 35/s.  One piece each: the burst 1-3 buckets of 2-16 processes among seeds
0-3999 (178 draws) 24 faster by 2%+, none slower (1810: 9.25x); sharing the evidence
outright (one count for all, simulated) made 24 / 5.  Its cost: one lone 429 may be a
bucket with a burst's (judging seed 390321, burst 78, 16 processes: 1.32x -> 1.35x)."""
CLIMB_SHARE = 0.05
"""With the evidence of one token, a spread's 429 while under this share of recent
answers was refused says the limit is far above the rate: at a refused share s a
one-token bucket of capacity R met at a rate l refuses l / (l + R) (``RUN_SHARE``), so R
is 19 times the rate or more here, and the curve climbs to it by doubling instead of
holding its plateau (``curve.climb``).  Tuned on the burst 1-3 buckets of seeds 0-3999
of ``benchmarks.family_sim``'s 2 s family, its seeds 1000-1499 and the untuned client
(lone 429s then the spread's at any spread x rate, before ``ONE_TOKEN_OVERLAP``): 0.03
changed nothing (the share, an EWMA from 1, is rarely that low), 0.07 gained
more on burst 1-3 (55 draws better instead of 40) but drew more 429s from the untuned
client (300/s, burst 10: p90 16.9% -> 18.8% at 100 ms), 0.10 made the 2 s family's p90
worse (1.93x -> 1.96x: buckets with a burst, 1353, burst 79, 1.11x -> 1.20x)."""


class ArrivalSpread:
    """Round trips (admission to answer) as an EWMA mean and mean absolute deviation,
    whether the last answer was accepted, the share refused, and the evidence that the
    limiter is a bucket of one token."""

    __slots__ = (
        "_deviation",
        "_evidence",
        "_mean",
        "_run",
        "_seen",
        "_shared",
        "_synced",
        "last_ok",
        "refused",
        "under",
    )

    def __init__(self, evidence: int | None = None, *, shared: bool = False) -> None:
        # lone 429s under the limit that tell one token (``EVIDENCE``, ``SHARED_EVIDENCE``)
        default = SHARED_EVIDENCE if shared else EVIDENCE
        self._evidence = default if evidence is None else evidence
        self._shared = shared  # on a backend shared by processes (``shared_answers``)
        self._seen: tuple[int, int] | None = None  # the shared totals last read
        self._synced = 1.0  # the refused share as of them
        self._mean: float | None = None
        self._deviation = 0.0
        self._run = 0
        self.last_ok = False
        self.refused = 1.0
        """The share of recent answers refused (EWMA); none yet counts as all."""
        self.under = 0
        """Lone 429s for requests sent under the learned limit (``below``)."""

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
        self._run = 0 if accepted else self._run + 1
        if self._run >= _LONG_RUN:
            self.under = 0  # a run this long is a limit's (a window's wall, a drop)
        self.last_ok = accepted
        self.refused += _SHARE_WEIGHT * ((0.0 if accepted else 1.0) - self.refused)
        if abs(round_trip) > _LONGEST:
            return
        mean = self._mean
        if mean is None:
            self._mean = round_trip
        else:
            self._mean = mean + _WEIGHT * (round_trip - mean)
            self._deviation += _WEIGHT * (abs(round_trip - mean) - self._deviation)

    def shared_answers(self, successes: int, throttles: int) -> None:
        """On a shared backend the refused share is every process's: the state a report
        returns holds the totals of sends accepted and 429s (``PacingState.successes``,
        ``throttles``), and the answers all processes reported since the last read move
        the share read then, as if they came evenly mixed (this process's own answers
        since, counted as they came, are among them: they are replaced).  Read alone, a
        process's share is an EWMA from 1 over a tenth of the answers with ten
        processes: seed 1810 of ``benchmarks.family_sim``'s 2 s family (650/s burst 1,
        10 processes) read 0.59-0.75 in every process at 1-3 s, over ``RUN_SHARE``, so
        none took the bucket for one token.  On the burst 1-3 buckets of 2-16 processes
        among seeds 0-3999 of the 2 s family (178 draws) this made 28 faster by 2%+ and
        8 slower, p90 4.95x -> 4.69x (737 8.97x -> 5.50x; 1801 10.28x -> 13.19x, and
        1810 itself 9.25x -> 10.60x, not traced); sharing the evidence count added
        nothing (simulated in-process: 11 / 8 alone).  Totals gone back (another backend, the
        state expired) are a new start.  Nothing for a pacer alone (its totals are its
        own answers, already counted)."""
        if not self._shared:
            return
        seen, self._seen = self._seen, (successes, throttles)
        accepted, refused = (0, 0) if seen is None else (successes - seen[0], throttles - seen[1])
        answers = accepted + refused
        if seen is None or accepted < 0 or refused < 0:
            self._synced = self.refused  # the first read (or a new start): its own so far
            return
        if answers:
            keep = (1 - _SHARE_WEIGHT) ** answers
            self._synced = keep * self._synced + (1 - keep) * refused / answers
        self.refused = self._synced

    def below(self, rate: float, limit: float) -> None:
        """A 429 for a request sent at ``rate`` on the curve that learned ``limit`` (sent
        past its origin): a lone one under ``UNDER`` of the limit is evidence of a
        one-token bucket.  Read before ``answered``."""
        if self.last_ok and rate < UNDER * limit:
            self.under += 1

    def one_token(self) -> bool:
        """The limiter looks like a one-token bucket (``EVIDENCE``) met far below its
        limit: under ``RUN_SHARE`` of recent answers were refused."""
        return self.under >= self._evidence and self.refused < RUN_SHARE

    def far(self) -> bool:
        """A one-token bucket's limit far above the rate (``CLIMB_SHARE``): climb."""
        return self.under >= self._evidence and self.refused < CLIMB_SHARE

    def explains(self, rate: float) -> bool:
        """A 429 just after an accepted answer, for a request sent at ``rate`` (per
        second), is the spread's: sends came closer together than their arrivals
        spread.  Two 429s in a row are a limit's, unless the limiter looks like a
        one-token bucket (``one_token``).  For such a bucket a lone 429 is the
        spread's from ``ONE_TOKEN_OVERLAP`` on: it refuses jittered arrivals at any
        rate.  Read before ``answered``."""
        overlap = self.seconds * rate >= OVERLAP
        if self.one_token():
            return (self.last_ok and self.seconds * rate >= ONE_TOKEN_OVERLAP) or overlap
        return self.last_ok and overlap
