"""Pacers sharing one schedule should not herd: a process that got no slot asks again
about its turn, not at the moment every other waiting process asks too.

Each pacer stands for one process on a shared backend (Redis): its reservations take a
round trip and are counted.  Every process has more to send than its share, so most
reservations find the slots before the horizon held by the others.  A process that
got nothing used to sleep until the next slot came within the horizon, as every other
one did: they woke together, one took the slot and the others asked again, about one
reservation per process per slot (87% of them empty on a real draw of 14 processes).
What must hold besides: together they never exceed the rate, and the rate is used
(no long gap while everyone waits for everyone).
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections.abc import Callable
from itertools import pairwise

import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend, Reservation
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing import FakeTime

ROUND_TRIP = 0.0015  # seconds: a Redis call's median measured on the real stack
SECONDS = 4.0


class CountingBackend:
    """One process's view of a shared state: a round trip per call, counted."""

    def __init__(self, shared: InMemoryPacingBackend, time: FakeTime, calls: list[int]) -> None:
        self.shared = shared
        self.tuning = shared.tuning
        self.time = time
        self.calls = calls  # the slots each reservation granted in the run, all processes

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        await self.time.sleep(ROUND_TRIP / 2)
        reservation = await self.shared.reserve(count, successes=successes, cap=cap)
        if self.time.now < 100.0 + SECONDS:  # (not the last, as processes leave)
            self.calls.append(reservation.count)
        await self.time.sleep(ROUND_TRIP / 2)
        return reservation

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        await self.time.sleep(ROUND_TRIP / 2)
        return await self.shared.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        return await self.shared.load()

    async def aclose(self) -> None:
        """Nothing opened."""

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """Shares one state whatever the key."""


async def _send(pacer: Pacer, time: FakeTime, starts: list[float]) -> None:
    while time.now < 100.0 + SECONDS:
        at = pacer.try_acquire()
        if at is None:
            at = await pacer.acquire()
        starts.append(at)
        await time.sleep(0.01)  # the request's round trip
        pacer.on_success(at)


async def _run(processes: int, rate: float) -> tuple[list[int], list[float]]:
    random.seed(processes)  # (the pacers' stagger draws; any seed must pass)
    time = FakeTime(start=100.0)
    shared = InMemoryPacingBackend(clock=time.clock)
    calls: list[int] = []
    starts: list[float] = []
    pacers = [
        Pacer(
            rate, backend=CountingBackend(shared, time, calls), clock=time.clock, sleep=time.sleep
        )
        for _ in range(processes)
    ]
    senders = [_send(pacer, time, starts) for pacer in pacers for _ in range(4)]
    await asyncio.gather(*senders)
    return calls, sorted(s for s in starts if s < 100.0 + SECONDS)


_HERD = pytest.mark.xfail(
    strict=True,
    reason="pacing: processes that got no slot all ask again when the next comes within "
    "the horizon (5-13 reservations per slot); a random stagger (branch herd) and places "
    "in line (branch line) fixed it but did not make 16 real processes faster "
    "(benchmarks/pacing-experiments.md)",
)


@pytest.mark.parametrize(
    ("processes", "rate"),
    [
        (8, 400.0),
        pytest.param(8, 200.0, marks=_HERD),
        pytest.param(16, 400.0, marks=_HERD),
        pytest.param(16, 200.0, marks=_HERD),
    ],
)
async def test_processes_sharing_a_schedule_ask_about_once_per_slot(
    processes: int, rate: float
) -> None:
    calls, starts = await _run(processes, rate)
    granted = sum(calls)
    assert len(calls) < 2 * granted, (len(calls), granted)  # was about `processes` each
    # The rate is never exceeded, in any second, and is used: no gap of many slots.
    interval = 1 / rate
    for i, start in enumerate(starts):  # (the stated rate's strict spacing: a slot's grace)
        assert bisect.bisect_left(starts, start + 0.5) - i <= 0.5 * rate + 1
    assert len(starts) >= 0.9 * rate * SECONDS
    gaps = [b - a for a, b in pairwise(starts)]
    assert max(gaps) < 4 * interval
