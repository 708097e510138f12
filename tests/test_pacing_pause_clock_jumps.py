"""A pause from a backend answering on another clock than its last reservation.

Redis unreachable from the start, the pacer's offset is the local backend's (zero);
once Redis answers again, a 429's report can come back before any reservation does,
its pause ending at Redis ``TIME`` (seconds since 1970).  Taken as is, that paused the
pacer for ~1.8e9 s: a WARNING saying so, and a send waiting (asleep) for decades."""

from __future__ import annotations

import attrs

from opentrain_async import Pacer, PacingFeedback, PacingState
from opentrain_async._pacing import InMemoryPacingBackend
from opentrain_async._pacing.shared_bounds import longest_ahead
from opentrain_async.testing import FakeTime

EPOCH = 1.8e9


class _ReportsOnAnotherClock(InMemoryPacingBackend):
    """Reserves on the local clock, answers reports on one ``EPOCH`` ahead."""

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        state = await super().report(feedback, cap=cap)
        return attrs.evolve(state, pause_until=state.pause_until + EPOCH)


async def test_a_pause_on_another_clock_is_no_longer_than_a_valid_one() -> None:
    time = FakeTime(start=100.0)
    backend = _ReportsOnAnotherClock(clock=time.clock)
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    sent_at = await pacer.acquire()
    await pacer.on_throttle(sent_at, 0.5)
    assert 0 < pacer.pause_remaining() <= longest_ahead(backend.tuning) + 1e-6
