"""A bucket whose cut landed below its rate is found again: the quiet probe.

A token bucket of 300/s with a burst of 5, 100 ms each way, no hints, 200 senders and
2,400 requests: slow start's burst is refused, the search doubles once per round trip
and its 429 cuts to what got through, about 240/s.  The cubic curve climbs back to that
limit over 20 round trips (4 s) and only probes above it past twice that: the job ran
at 240-250/s from 4 s to its end (11.14 s, 149 429s).  With branch `stuck`'s
quiet probe (past half the recovery with no cut, one request per round trip more each
round trip; dropped, see its section in ``benchmarks/pacing-experiments.md``) it was
back at the bucket's rate by 6.5 s: 10.39 s, 78 429s.
One pacer on the in-process backend, in virtual time (clocks and sleeps the loop's).
"""

from __future__ import annotations

import asyncio
import collections

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
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


@pytest.mark.xfail(
    strict=True,
    reason="branch stuck's quiet probe (past half the recovery, one request per round trip "
    "more each round trip) was dropped on its judging: the 429 share's p90 rose in both "
    "families; gated on 50 ms round trips (branch quiet50) it was dropped again, the 429 "
    "share's mean up; gated also off a seen wall (branch quiet3, judged on 485000-485499) "
    "the 2 s family's 429 p90 rose (benchmarks/pacing-experiments.md, stuck, quiet50, quiet3)",
)
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
