"""A hint-less wall's lift after a shared backend came back (``PacingFallback``).

``WallProbe._lifted`` reads the successes known (every pacer's: the last report's
state, ``Pacer.state``) at each lift, and the cycle's rate is the difference over
its time (``PacingFeedback.lifted``, ``curve.lift``).  While the shared side is out of
reach a process paces on a local state whose count starts at 0; a wall lifting then
records that small count, and the first lift after the rejoin subtracted it from the
shared count (every success of every process so far): four processes behind a fixed
window of 23 per 1.68 s (13.7/s) reported lifts of 145/s and 150/s, and the shared
curve was raised there for everyone (its limit 38.7/s at the end, 604 429s against
462 with no outage).  Now a pacer whose state came from the other side starts the
cycle's count again (``WallProbe.counted_by``).  (Failed on main: lifts of 150/s.)
Four pacers, each on its own ``PacingFallback`` over one shared in-memory state, in
virtual time (the loop's clock and sleeps); the shared side is down from 20 s to 26 s.
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async._pacing.fallback import PacingFallback
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import Switch, drive

W, WINDOW, PROCESSES = 23, 1.68, 4
MOST = 2 * W / WINDOW  # what any cycle can admit: a window's W on each side of a reset


class _Down(Switch):
    """The shared state, out of reach (its rejoin probe's ``load`` too) while ``down``;
    the ``lifted`` of each report it answers is noted."""

    lifted: list[float]

    async def load(self) -> PacingState:
        if self.down:
            raise ConnectionError("down")
        return await super().load()

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        state = await super().report(feedback, cap=cap)
        if feedback.lifted:
            self.lifted.append(feedback.lifted)
        return state


async def _job() -> tuple[_Down, int]:
    loop = asyncio.get_running_loop()
    shared = _Down(clock=loop.time)
    shared.lifted = []
    fallbacks = [
        PacingFallback(shared, where="test", clock=loop.time, sleep=asyncio.sleep)
        for _ in range(PROCESSES)
    ]
    pacers = [Pacer(backend=backend, clock=loop.time, sleep=asyncio.sleep) for backend in fallbacks]
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=W, window=WINDOW)),)))

    async def outage() -> None:
        await asyncio.sleep(20.0)
        shared.down = True
        await asyncio.sleep(6.0)
        shared.down = False

    outage_task: asyncio.Task[Any] = asyncio.ensure_future(outage())
    trace = await drive(pacers, limiter, 680, workers=40, latency=0.05, hint=lambda n, w: 0.0)
    await outage_task
    assert all(backend.fallbacks == 1 for backend in fallbacks)
    return shared, len(trace.refused)


def test_a_lift_after_the_shared_side_came_back_reads_no_local_count() -> None:
    """No lift reports more than a fixed window can admit in a cycle, and the shared
    curve ends near the window's rate (main: lifts of 145/s and 150/s, 38.7/s)."""
    loop = VirtualTimeLoop()
    try:
        shared, refused = loop.run_until_complete(_job())
    finally:
        loop.close()
    assert all(lifted <= MOST for lifted in shared.lifted), shared.lifted
    assert shared.state.limit is not None
    assert shared.state.limit < MOST
    assert refused < 560  # main: 604 (462 with no outage)
