"""A request the full slow-start window held checks in with a shared backend before it goes.

Before any limit is known an unpaced pacer checks in every ``sync_every`` (reporting its
successes, learning another process's 429).  A request that waited in the slow-start
window was let in by an answer and went at once, with no check-in: a process whose jobs
all waited there (a job no larger than its concurrency) learned no pause until its own
429.  Now, let in once a check-in is due, it learns the shared state first (its successes
ride with the next check-in): ``benchmarks.family_sim --processes 16``, seeds 7000-7199,
429s median 50% -> 46%, p90 100% -> 93%.
"""

from __future__ import annotations

import asyncio

from opentrain_async import InMemoryPacingBackend, Pacer, PacingTuning
from opentrain_async.testing import FakeTime


def _shared(time: FakeTime) -> InMemoryPacingBackend:
    tuning = PacingTuning(sync_every=0.005, initial_window=1)
    return InMemoryPacingBackend(tuning, clock=time.clock)


async def _waiting(pacer: Pacer) -> asyncio.Future[float]:
    """A second request, held by the pacer's full window (one in flight)."""
    waiter = asyncio.ensure_future(pacer.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    return waiter


async def test_a_request_let_in_by_the_window_learns_another_process_429() -> None:
    """Another process's 429 paused the shared state while this one waited: it waits too."""
    time = FakeTime(start=100.0)
    shared = _shared(time)
    waiting, other = (Pacer(backend=shared, clock=time.clock, sleep=time.sleep) for _ in "ab")
    held = await waiting.acquire()  # checked in at 100.0: nothing known yet
    second = await _waiting(waiting)
    sent = await other.acquire()
    await other.on_throttle(sent, 0.5)  # an exact hint: everyone pauses 0.5 s
    pause_until = shared.state.pause_until
    assert pause_until > 100.4
    time.now += 0.01  # past the next check-in
    waiting.on_success(held)  # the window lets the second request in
    started = await second
    assert started >= pause_until


async def test_a_request_let_in_by_the_window_goes_paced_at_a_limit_found_meanwhile() -> None:
    """Another process's 429 set the shared limit while this one waited: it goes paced,
    and its successes ride with that reservation, as with any check-in."""
    time = FakeTime(start=100.0)
    shared = _shared(time)
    waiting, other = (Pacer(backend=shared, clock=time.clock, sleep=time.sleep) for _ in "ab")
    held = await waiting.acquire()
    second = await _waiting(waiting)
    sent = await other.acquire()
    await other.on_throttle(sent, None)  # no hint: a short pause, and the search begins
    assert shared.state.limit is not None
    time.now += 0.06  # past the pause and the next check-in
    waiting.on_success(held)
    await second
    assert waiting.window.open  # paced from here on, not one more unpaced send
    assert shared.state.successes == 1


async def test_within_a_check_in_the_window_lets_it_go_at_once() -> None:
    """No check-in due: the room handed over is taken at once, no backend call."""
    time = FakeTime(start=100.0)
    shared = _shared(time)
    pacer = Pacer(backend=shared, clock=time.clock, sleep=time.sleep)
    held = await pacer.acquire()
    second = await _waiting(pacer)
    time.now += 0.001
    pacer.on_success(held)
    assert await second == 100.001
    assert shared.state.successes == 0  # reported with the next check-in
