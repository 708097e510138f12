"""A window with no hints, past its first wall: the shut limiter's probes step through
the span where the next reset must be, rather than doubling their pause from the lower
bound the last wall taught, so each reset is found within a step.  Injected clocks
only: a fixed window served in-process, every answer at once."""

from __future__ import annotations

import math

from opentrain_async import Pacer
from opentrain_async.testing import FakeTime

START = 100.0
PERIOD = 1.3  # seconds per window
SIZE = 10  # sends per window


async def _serve(pacer: Pacer, time: FakeTime, sends: int) -> list[float]:
    """``sends`` requests one after another through a fixed window of ``SIZE`` per
    ``PERIOD`` from ``START`` that refuses with no hint; returns the accepted ones'
    admission times (virtual seconds)."""
    counts: dict[int, int] = {}
    accepted: list[float] = []
    for _ in range(sends):
        at = await pacer.acquire()
        window = math.floor((at - START) / PERIOD)
        if counts.get(window, 0) < SIZE:
            counts[window] = counts.get(window, 0) + 1
            accepted.append(at)
            pacer.on_success(at)
        else:
            await pacer.on_throttle(at, None)
    return accepted


async def test_past_the_first_wall_each_reset_is_found_within_a_step() -> None:
    """From the third wall on (the first teaches a lower bound of the period, the
    second narrows it) each window opens (its first send accepted) within a tenth of
    the period of its reset: before, the probe's pause doubled on from the lower bound
    (the last reset plus the period), and every other reset was found 0.6-0.75 s late
    (here: 0.01-0.05 s)."""
    time = FakeTime(start=START)
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    accepted = await _serve(pacer, time, 200)
    opened = {}
    for at in accepted:
        opened.setdefault(math.floor((at - START) / PERIOD), at)
    late = [at - (START + window * PERIOD) for window, at in sorted(opened.items())]
    assert len(late) >= 6
    assert max(late[3:]) <= PERIOD / 10, late
