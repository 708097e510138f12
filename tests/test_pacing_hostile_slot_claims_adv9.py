"""adv9: slide2's slot-wait spread (``allowance.slot_wait``/``slot_waited``, 051e851)
against limits that change under it and hints that lie, then tell the truth.

One pacer on the in-process backend in virtual time, 40 senders, 10 ms each way
(``pacing_kit.drive``, as in ``test_pacing_hostile_exact_claims.py``); each 429 waited
out by its request unless the pacer says it waits it.  Requests are counted per
virtual second: a storm is a second far over the limit's own rate, a stall a long gap
between successes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async.testing import FixedWindow, LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive

WORKERS, LATENCY = 40, 0.01
Hint = Callable[[float, float], float]


async def _job(schedule: LimitSchedule, n: int, hint: Hint | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(schedule)
    told = _truth if hint is None else hint
    trace = await drive([pacer], limiter, n, workers=WORKERS, latency=LATENCY, hint=told)
    admitted = sorted(trace.arrived)
    return {
        "done": admitted[-1],
        "throttles": len(trace.hints),
        "sends": trace.sends,
        "gap": max(b - a for a, b in itertools.pairwise(admitted)),
    }


def _truth(now: float, wait: float) -> float:
    """The limiter's wait, told as it is."""
    return wait


def _run(schedule: LimitSchedule, n: int, hint: Hint | None = None) -> dict[str, Any]:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_job(schedule, n, hint))
    finally:
        loop.close()


def _steps(*steps: tuple[float, FixedWindow | SlidingWindow]) -> LimitSchedule:
    return LimitSchedule(tuple(steps))


def test_a_limiter_flipping_between_sliding_and_fixed_draws_no_storm_no_stall() -> None:
    """Held: 100 per 1.5 s, sliding and fixed in turn every 6 s (9bcd1d0: 57 429s for
    1,200 sends, 16.8 s, busiest second 135; 8b395a5: 106, 18.1 s, 152)."""
    flips = tuple(
        (6.0 * i, (SlidingWindow if i % 2 == 0 else FixedWindow)(limit=100, window=1.5))
        for i in range(12)
    )
    result = _run(_steps(*flips), 1200)
    assert max(result["sends"].values()) <= 160
    assert result["gap"] <= 2.0
    assert result["throttles"] <= 120
    assert result["done"] <= 20.0


@pytest.mark.parametrize(
    ("first", "then", "at", "n"),
    [(1.5, 6.0, 5.0, 800), (6.0, 1.0, 10.0, 1200)],
    ids=["W grows", "W shrinks"],
)
def test_a_sliding_window_whose_length_changes_mid_job_draws_no_storm_no_stall(
    first: float, then: float, at: float, n: int
) -> None:
    """Held: 100 per W, W 1.5 s -> 6 s at 5 s, or 6 s -> 1 s at 10 s (9bcd1d0: 53 and 60
    429s, busiest seconds 135 and 142, longest gaps 5.8 s; 8b395a5: 140 and 251)."""
    schedule = _steps((0.0, SlidingWindow(100, first)), (at, SlidingWindow(100, then)))
    result = _run(schedule, n)
    assert max(result["sends"].values()) <= 160
    assert result["gap"] <= max(first, then) + 0.5
    assert result["throttles"] <= 100


def test_slot_claims_proved_false_then_true_draw_no_storm() -> None:
    """A sliding window of 30 per 5 s whose exact hints say a fifth of the wait for the
    first 10 s (slots claimed free that never free), then the truth.  After 12 s the
    base (8b395a5, before slide2) sends 3-44 requests a second (725 429s in all, done at
    56.7 s); 9bcd1d0 sends ~300 in the first second of each window, 97% refused (3,654
    429s for 300 sends, done at 47.3 s)."""
    result = _run(
        _steps((0.0, SlidingWindow(30, 5.0))), 300, lambda now, wait: wait / 5 if now < 10 else wait
    )
    late = [count for second, count in result["sends"].items() if second >= 12]
    assert max(late) <= 80  # 9bcd1d0: 312; a window's 30 and one try of each sender
    assert result["throttles"] <= 1.25 * 725  # 9bcd1d0: 3,654
