"""A wall whose rounded hints all say 1: the guessed pause stops at their bound.

A sliding window of 30 per 1 s, every hint rounded up to whole seconds: its W goes in
the first 0.1 s (slow start), so every refusal's wait is under a second and every hint
says 1.  That is no window's hint (``pause.says_reset``): the pause is a guess, 50 ms
doubling per refused probe.  But each 1 also says the limiter admits again within a
second of its answer, so the wall's first 429s (about 0.1 s) put the reset by about
1.1 s; the guesses doubled past it (a probe refused at about 0.8 s paused 0.8 s more),
and the second window's first admission came at 1.72 s.  With the bound
(``PacingState.wall_bound``) no guessed pause ends past it: 1.12 s, the same 429s.
One pacer on the in-process backend, in virtual time (clocks and sleeps the loop's).
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive, rounded_up

W, WINDOW, N, WORKERS = 30, 1.0, 90, 40
LATENCY = 0.01  # seconds each way


async def _job() -> tuple[list[float], list[float]]:
    """When each accepted request was admitted (from the job's start), and the hints of
    the refused ones: N requests by WORKERS senders, a 429's request waiting its hint
    unless the pacer says it waits it (``Pacer.paces_reset``, as a bulk send's retry)."""
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    trace = await drive([pacer], limiter, N, workers=WORKERS, latency=LATENCY, hint=rounded_up)
    return sorted(trace.admitted), trace.hints


@pytest.mark.xfail(
    strict=True,
    reason="round3's wall_bound (a rounded second bounds the guessed pause) is not on main: "
    "its 3.12 stall after an outage was the wall probe's (fixed, branch wallbound2), but "
    "re-judged on seeds 482000 its 2 s family's p90 and 429 p90 read worse "
    "(benchmarks/pacing-experiments.md, round3 and wallbound2)",
)
def test_a_wall_of_ones_reopens_by_the_bound_its_hints_say() -> None:
    """Every hint 1; the second window's first admission by the first 429s' bound
    (1.12 s; 1.72 s before branch ``round3``: the doubling guess past it), the job
    done by 3.1 s (3.70 s before), no more 429s than W and a few probes per wall."""
    loop = VirtualTimeLoop()
    try:
        accepted, hints = loop.run_until_complete(_job())
    finally:
        loop.close()
    assert len(accepted) == N
    assert set(hints) == {1.0}  # never a window's hint: the guessed pause throughout
    assert accepted[W - 1] < 0.2  # the first window at once
    assert WINDOW <= accepted[W] < 1.3
    assert accepted[-1] < 3.1
    assert len(hints) <= 40
