"""The arrival spread on a shared backend: a process that has not reported a 429 itself
still knows, from its reservations, that the limit is known and past its search.

Before, it judged a lone 429 on the state as of its own last report (none: "no limit
yet"), so every process's first jittered 429 paused and cut the shared curve (family_sim
seed 296: a 3,409/s bucket shared by 13 processes 162 ms away, cut to 691/s).
"""

from __future__ import annotations

from opentrain_async import Pacer, PacingState, PacingTuning
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async.testing import FakeTime

from .pacing_kit import Shared


async def test_a_process_that_never_reported_knows_a_lone_429_is_the_spread() -> None:
    time = FakeTime(start=100.0)
    tuning = PacingTuning()
    learned = PacingState(limit=1000.0, searching=False, cuts=3, origin=99.0, recover=0.3)
    inner = InMemoryPacingBackend(tuning, clock=time.clock, state=learned)
    pacer = Pacer(backend=Shared(inner), clock=time.clock, sleep=time.sleep)
    for trip in [0.01, 0.09] * 50:  # round trips of 10-90 ms: arrivals spread ~40 ms
        sent = await pacer.acquire()
        time.now += trip
        pacer.on_success(sent)
    assert pacer.state.limit is None  # as of its own reports: none
    await pacer.on_throttle(await pacer.acquire(), None)
    assert inner.state.throttles == 1
    assert (inner.state.cuts, inner.state.limit) == (3, 1000.0)  # counted, no cut
    assert pacer.pause_remaining() <= 0  # and no pause
    await pacer.on_throttle(await pacer.acquire(), None)  # a second in a row: the limit's
    assert inner.state.cuts == 4
