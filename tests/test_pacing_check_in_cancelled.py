"""A request cancelled while it checks in with a shared backend gives back what it held.

Before any limit is known an unpaced pacer checks in with its backend (a Redis round
trip).  A task cancelled there (a caller's timeout, a closing client) must leave the
pacer as it found it: the next request checks in again, not waiting for ever for an
answer nobody is fetching.
"""

from __future__ import annotations

import asyncio

from opentrain_async import InMemoryPacingBackend, Pacer, PacingTuning
from opentrain_async._pacing.backend import Reservation
from opentrain_async.testing import FakeTime

from .pacing_kit import Shared


class _Slow(Shared):
    """A shared state whose reservations wait until ``go`` is set (a round trip)."""

    def __init__(self, inner: InMemoryPacingBackend) -> None:
        super().__init__(inner)
        self.go = asyncio.Event()
        self.asked = 0

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        self.asked += 1
        await self.go.wait()
        return await super().reserve(count, successes=successes, cap=cap)


def _pacer(time: FakeTime) -> tuple[Pacer, _Slow]:
    tuning = PacingTuning(sync_every=0.005, initial_window=1)
    backend = _Slow(InMemoryPacingBackend(tuning, clock=time.clock))
    return Pacer(backend=backend, clock=time.clock, sleep=time.sleep), backend


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_request_cancelled_in_the_first_check_in_does_not_hold_the_others() -> None:
    """The first check-in's task cancelled while others wait for its answer: one of them
    checks in instead, and they go."""
    time = FakeTime(start=100.0)
    pacer, backend = _pacer(time)
    first = asyncio.ensure_future(pacer.acquire())
    await _turns()
    second = asyncio.ensure_future(pacer.acquire())
    await _turns()
    assert not first.done()
    assert not second.done()
    assert backend.asked == 1
    first.cancel()
    await _turns()
    backend.go.set()
    await _turns(10)
    assert second.done()
    assert second.result() >= 100.0
