"""The first 429's estimate: what every process got through, one rule for one and many.

``samples.first_estimate`` runs inside ``apply_report``, so the in-memory backend and the
Redis report script (held to it by ``tests/test_pacing_redis.py``) start the search
from the same place.  Before, only the Redis script counted the other processes: the
in-memory form (and the simulator's shared backend) started from the one process that
happened to see the 429, perhaps a sixth of what got through.
"""

from __future__ import annotations

import asyncio

import pytest

from opentrain_async import InMemoryPacingBackend, Pacer, PacingFeedback, PacingState
from opentrain_async import PacingTuning as Tuning
from opentrain_async._pacing import apply_report
from opentrain_async._pacing.samples import first_estimate, record

T = Tuning()


def throttled(local_rate: float | None, hint: float | None = 0.0001) -> PacingFeedback:
    """A 429 whose hint bounds no rate here (a bucket's 0.1 ms: 10,000/s)."""
    return PacingFeedback(
        throttled=True, throttled_at=0.99, retry_after=hint, local_rate=local_rate
    )


def with_successes(per_bucket: int, buckets: int, end: float) -> PacingState:
    """A state whose samples hold ``per_bucket`` successes in each of the last
    ``buckets`` tenths of a second before ``end``."""
    state = PacingState()
    for i in range(buckets):
        state = record(state, end - (buckets - i) * 0.1 + 0.05, accepted=per_bucket)
    return state


def test_the_search_starts_from_what_every_process_got_through() -> None:
    """30 successes per 0.1 s in the shared samples (300/s over all processes): the
    process that sees the first 429 got 50/s itself, yet the search starts near 300/s."""
    state = with_successes(30, 5, end=1.0)
    after = apply_report(state, 1.0, throttled(local_rate=50.0), None, T)
    assert after.limit == pytest.approx(300.0, rel=0.25)
    assert after.limit > 200.0  # not the one process's 50/s


def test_a_process_faster_than_the_samples_keeps_its_own_rate() -> None:
    """The larger of the two counts: the samples may lag a process's own successes."""
    state = with_successes(1, 5, end=1.0)
    after = apply_report(state, 1.0, throttled(local_rate=400.0), None, T)
    assert after.limit == pytest.approx(400.0)


def test_nothing_through_yet_starts_at_one_request_per_doubling() -> None:
    """No success anywhere and no local rate: one request per doubling, not the
    MIN_RATE crawl that held every process back while the search climbed untested."""
    assert first_estimate(PacingState(), 1.0, None, T) == pytest.approx(1 / T.doubling)
    after = apply_report(PacingState(), 1.0, throttled(local_rate=None), None, T)
    assert after.limit == pytest.approx(1 / T.doubling)


def test_only_the_first_429_uses_it() -> None:
    """Once a limit is known, the samples do not reset it through the estimate."""
    state = with_successes(30, 5, end=1.0)
    first = apply_report(state, 1.0, throttled(local_rate=50.0), None, T)
    again = apply_report(first, 1.001, throttled(local_rate=5000.0), None, T)
    assert again.limit == first.limit


def test_an_exact_hint_is_measured_in_slots_at_the_estimate() -> None:
    """A 50 ms exact hint at 300/s (every process) is 15 slots: a window's reset, so the
    window is learned; at the one process's 50/s it would have been 2.5 slots."""
    state = with_successes(30, 5, end=1.0)
    after = apply_report(state, 1.0, throttled(local_rate=50.0, hint=0.05), None, T)
    assert after.window_hint == pytest.approx(0.05)
    alone = apply_report(PacingState(), 1.0, throttled(local_rate=50.0, hint=0.05), None, T)
    assert alone.window_hint == 0.0


def test_a_pacer_with_no_success_of_its_own_starts_from_everyones() -> None:
    """Five processes report 12 successes per 0.1 s each to one backend (600/s in all);
    the sixth, whose pacer saw none, meets the first 429: the search starts from the
    sum, not from nothing."""
    now = [0.0]
    backend = InMemoryPacingBackend(T, clock=lambda: now[0])
    pacer = Pacer(backend=backend, clock=lambda: now[0])

    async def scenario() -> float | None:
        for step in range(10):
            now[0] = step * 0.1 + 0.05
            for _process in range(5):
                await backend.reserve(1, successes=12)
        now[0] = 1.0
        await pacer.on_throttle(0.99, 0.01)
        return backend.state.limit

    limit = asyncio.run(scenario())
    assert limit is not None
    assert limit > 400.0
