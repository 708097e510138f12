"""A bucket whose cut landed below its rate is found again: the quiet probe.

A token bucket of 300/s with a burst of 5, 100 ms each way, no hints, 200 senders and
2,400 requests: slow start's burst is refused, the search doubles once per round trip
and its 429 cuts to what got through, about 240/s.  The cubic curve climbs back to that
limit over 20 round trips (4 s) and only probes above it past twice that: the job ran
at 240-250/s from 4 s to its end (11.14 s, 149 429s).  With the quiet probe
(``curve.quiet_probe``: past half the recovery with no cut, one request per round trip
more each round trip) it is back at the bucket's rate by 6.5 s: 10.39 s, 78 429s.
One pacer on the in-process backend, in virtual time (clocks and sleeps the loop's).
"""

from __future__ import annotations

import asyncio
import collections

import attrs

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.curve import QUIET_CUTS, QUIET_TRIP, quiet_probe
from opentrain_async._pacing.state import PacingFeedback, PacingState, PacingTuning
from opentrain_async.testing import LimitSchedule, TokenBucket
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import Trace, drive

RATE, BURST, N, WORKERS = 300.0, 5, 2400, 200
LATENCY = 0.1  # seconds each way


def _no_hint(now: float, wait: float) -> float:
    """The server says nothing of when to come back (a hint of 0)."""
    return 0.0


async def _job() -> Trace:
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, TokenBucket(rate=RATE, burst=BURST)),)))
    return await drive([pacer], limiter, N, workers=WORKERS, latency=LATENCY, hint=_no_hint)


def test_a_bucket_cut_below_its_rate_is_paced_at_it_again() -> None:
    """From 6 s on the pacer admits at 93% of the bucket's rate or more (was 81%: the
    cut's 240/s held for good), the job is done by 10.6 s (was 11.14 s), and the probing
    costs no more 429s than holding below the rate did (78, was 149)."""
    loop = VirtualTimeLoop()
    try:
        trace = loop.run_until_complete(_job())
    finally:
        loop.close()
    admitted = sorted(trace.admitted)
    assert len(admitted) == N
    per_second = collections.Counter(int(t) for t in admitted)
    assert per_second[6] >= 0.93 * RATE
    assert admitted[-1] < 10.6
    assert len(trace.refused) <= 100


def test_the_probe_waits_for_a_long_round_trip() -> None:
    """Only a cut whose 429 came back 50 ms or more after its admission is probed past:
    at 0-11 ms the recovery is its 0.3 s floor and the curve's own doubling soon finds
    the limit, while the probe drew 429s from deep bursts (benchmarks/pacing-experiments.md,
    quiet50)."""
    quiet = PacingState(limit=100.0, searching=False, origin=0.0, recover=1.0)
    for trip in (0.0, 0.001, 0.011, QUIET_TRIP * 0.99):
        assert quiet_probe(attrs.evolve(quiet, trip=trip), 0.9, 1.0) == 0.0
    assert quiet_probe(attrs.evolve(quiet, trip=QUIET_TRIP), 0.9, 1.0) > 100.0


def test_the_probe_stays_off_once_a_wall_was_seen() -> None:
    """A wall's 429 reported (``walls``: a request sent after a guessed pause refused
    too) keeps the probe off: a window with no hints has neither ``window_hint`` nor
    ``win_size``, and the probe ran into each of its ends (benchmarks/pacing-experiments.md,
    quiet50 and quiet3); one reported through the in-process backend counts."""
    quiet = PacingState(limit=100.0, searching=False, origin=0.0, recover=1.0, trip=0.1)
    assert quiet_probe(quiet, 0.9, 1.0) > 100.0
    assert quiet_probe(attrs.evolve(quiet, walls=1), 0.9, 1.0) == 0.0
    tuning = PacingTuning()
    walled = PacingFeedback(throttled=True, throttled_at=0.5, walled=True)
    assert apply_report(quiet, 0.6, walled, None, tuning).walls == 1
    plain = attrs.evolve(walled, walled=False)
    assert apply_report(quiet, 0.6, plain, None, tuning).walls == 0


def test_the_probe_stays_off_a_curve_cut_by_an_exact_hint() -> None:
    """An exact hint seen (``hint_max``: a bucket's own word on when its next token
    comes) keeps the probe off: of the draws whose 429s the probe raised most on seeds
    485000-485499, six of seven were buckets with exact hints, and none of the traced
    draws it was for had one (benchmarks/pacing-experiments.md, quiet3 and quiet4).  A
    429 with an exact hint reported through the in-process backend turns it off; one
    with a whole second's hint (a window's rounding) or none does not."""
    quiet = PacingState(limit=100.0, searching=False, origin=0.0, recover=1.0, trip=0.1)
    assert quiet_probe(quiet, 0.9, 1.0) > 100.0
    assert quiet_probe(attrs.evolve(quiet, hint_max=0.03), 0.9, 1.0) == 0.0
    tuning = PacingTuning()
    for hint, probes in ((0.013, False), (1.0, True), (None, True)):
        refused = PacingFeedback(throttled=True, throttled_at=0.5, retry_after=hint)
        after = apply_report(quiet, 0.6, refused, None, tuning)
        assert (quiet_probe(after, after.recover * 0.9, after.recover) > 0) is probes


def test_the_probe_stays_off_a_curve_cut_often() -> None:
    """Past ``QUIET_CUTS`` cuts the curve has found its limit by climbing into it, and a
    probe past it costs a 429 a probe: no probe (benchmarks/pacing-experiments.md,
    quiet4)."""
    quiet = PacingState(limit=100.0, searching=False, origin=0.0, recover=1.0, trip=0.1)
    for cuts in range(QUIET_CUTS + 1):
        assert quiet_probe(attrs.evolve(quiet, cuts=cuts), 0.9, 1.0) > 100.0
    assert quiet_probe(attrs.evolve(quiet, cuts=QUIET_CUTS + 1), 0.9, 1.0) == 0.0
