"""The simulator's processes judge a 429 as ``RedisPacingBackend`` does (branch simgap).

Before the shared state has a rate, a request a process admitted on its own is judged
as of when that process last heard from the state; the simulator's processes reported
the send itself, so the first cut's period (``recover``) was one round trip where the
real stack's spans from the process's start-up reservation (seed 93934376, 16
processes: 0.112 s simulated, 0.434 s real; benchmarks/README.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks import pacing_sim
from benchmarks.family import draw
from benchmarks.family_sim import _Process, run_draw
from opentrain_async._pacing.backend import Reservation
from opentrain_async._pacing.state import PacingFeedback, PacingState, PacingTuning


class _Shared:
    """A shared state that answers at a set time with or without a rate."""

    def __init__(self) -> None:
        self.tuning = PacingTuning()
        self.rate: float | None = None
        self.reported: list[PacingFeedback] = []

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        return Reservation(0.06, 0.06, 0.0, count, self.rate, 0, 0.0)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        self.reported.append(feedback)
        return PacingState(limit=self.rate)


def test_an_unpaced_429_is_judged_as_of_the_last_answer() -> None:
    shared = _Shared()
    clock = iter([0.5, 0.7]).__next__
    process = _Process(shared, clock)  # type: ignore[arg-type]

    async def scenario() -> None:
        await process.reserve(1)
        await process.report(PacingFeedback(throttled=True, throttled_at=0.354))
        shared.rate = 17.0
        await process.reserve(1)
        await process.report(PacingFeedback(throttled=True, throttled_at=0.65))

    asyncio.run(scenario())
    assert shared.reported[0].throttled_at == 0.06  # unpaced: as of the last answer
    assert shared.reported[1].throttled_at == 0.65  # paced on the state's slots: as sent


def test_seed_93934376_first_cut_spans_from_the_start(monkeypatch: Any) -> None:
    """The draw the simulator read 2.72x before ``lift`` and the real stack 1.27-1.80x:
    its first cut's period is the real one's (0.434 s traced), not a round trip (0.112
    s), so the search no longer doubles into the window still shut and cuts again."""
    states: list[PacingState] = []
    report = pacing_sim._SharedBackend.report

    async def traced(self: Any, feedback: PacingFeedback, **kw: Any) -> PacingState:
        state = await report(self, feedback, **kw)
        states.append(state)
        return state

    monkeypatch.setattr(pacing_sim._SharedBackend, "report", traced)
    result = run_draw(draw(93934376, max_window=2.0, processes=16))
    first = next(s for s in states if s.cuts == 1)
    assert first.recover > 0.3
    assert result.ratio < 1.7
