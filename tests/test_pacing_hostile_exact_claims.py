"""A hostile server's exact hints that claim a reset which never comes: a fixed window of
30 per 5 s whose every 429 names the next whole second (a proxy computing "the next
second" instead of the window's end).  Every refusal of a wall claims the same instant,
so ``allowance.same_wall`` (branch slidex, merged b767f50) takes each later one for "one
more refusal of the wall that set the pause" and keeps the window's mode; but the claim
is false each second, and on 748ad8c the job drew 384 429s for 300 sends where 2e4d62f
(before slidex) drew 205, as 748ad8c does with ``same_wall`` always False, finishing no
sooner (52.9 virtual s each).  Counted per virtual second too: no storm (41 requests in
the busiest second on both).  slidex was reverted for it: the second test guards that.

One pacer on the in-process backend, in virtual time; each 429 waited out by its
request unless the pacer says it waits it (``Pacer.paces_reset``)."""

from __future__ import annotations

import asyncio
import math

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive

N, WORKERS, LATENCY = 300, 40, 0.01


async def _job() -> tuple[int, int]:
    """(429s, the busiest virtual second's requests) for N sends by WORKERS senders."""
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=30, window=5.0)),)))
    trace = await drive([pacer], limiter, N, workers=WORKERS, latency=LATENCY, hint=_next_second)
    return len(trace.hints), max(trace.sends.values())


def _next_second(now: float, wait: float) -> float:
    """ "The next second": a lie."""
    return max(math.ceil(now + 1e-9) - now, 0.001)


def _run() -> tuple[int, int]:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_job())
    finally:
        loop.close()


def test_exact_claims_of_the_next_second_draw_no_storm() -> None:
    """Held: the busiest virtual second stays near the window's own traffic."""
    assert _run()[1] <= 60


def test_exact_claims_that_prove_false_cost_no_more_429s_than_before() -> None:
    assert _run()[0] <= 1.25 * 205
