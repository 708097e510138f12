"""A window's allowance shared by several pacers: W in total at each reset, one probe.

Three pacers share one backend, as clients of one process share the in-memory state
and processes share Redis (whose scripts the agreement test in test_pacing_redis.py
holds to the same functions).  Driven by hand on an injected clock: the server is a
fixed window of W per 4 s with exact hints (the time left to its reset).  What a user
relies on: together they send W per window, not W each; past W exactly one request
goes for all of them (the probe), and its 429 holds everyone to the reset.
"""

from __future__ import annotations

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingState

from .step_clock import Clock

W = 6
PACERS = 3


def _admit_all(pacers: list[Pacer]) -> list[tuple[Pacer, float]]:
    """Every send the pacers admit now, taking turns (as processes would)."""
    admitted: list[tuple[Pacer, float]] = []
    progress = True
    while progress and len(admitted) < 100:
        progress = False
        for pacer in pacers:
            at = pacer.try_acquire()
            if at is not None:
                admitted.append((pacer, at))
                progress = True
    return admitted


def _shared(clock: Clock) -> tuple[InMemoryPacingBackend, list[Pacer]]:
    """A window of seconds already known (W accepted in the last one) and a pause that
    ends at its reset, 1 s from now."""
    backend = InMemoryPacingBackend(clock=clock)
    reset = clock.now + 1.0
    backend.state = PacingState(
        limit=1.5,
        searching=False,
        cuts=2,
        successes=W,
        window_hint=3.6,
        pause_until=reset,
        win_reset=reset,
    )
    return backend, [Pacer(backend=backend, clock=clock, sleep=clock.sleep) for _ in range(PACERS)]


async def _at_the_reset(clock: Clock, pacers: list[Pacer]) -> list[tuple[Pacer, float]]:
    """Each pacer's first request waits for the reset (it learns the state's pause and
    the window); then everything the pacers admit at once."""
    reset = clock.now + 1.0
    first = [(pacer, await pacer.acquire()) for pacer in pacers]
    assert clock.now >= reset
    assert all(at >= reset for _, at in first)
    return first + _admit_all(pacers)


async def test_pacers_sharing_a_window_send_w_in_total_at_each_reset() -> None:
    clock = Clock()
    backend, pacers = _shared(clock)
    burst = await _at_the_reset(clock, pacers)
    assert len(burst) == W  # W for all of them, not W each
    assert len({id(pacer) for pacer, _ in burst}) > 1  # shared out, not one pacer's
    for pacer, at in burst:
        pacer.on_success(at)
    probes = _admit_all(pacers)
    assert len(probes) == 1  # past W: one probe for all
    assert _admit_all(pacers) == []  # nobody else while it is out
    prober, at = probes[0]
    await prober.on_throttle(at, 3.2)  # exact: the window resets 3.2 s from now
    clock.now += 3.1
    assert _admit_all(pacers) == []  # the probe's 429 holds everyone to the reset
    clock.now += 0.15
    assert len(_admit_all(pacers)) == W  # the next window: W again, in total
    assert backend.state.win_size == W


async def test_the_probe_waits_for_every_answer_of_the_window() -> None:
    """A probe that overtook the window's own sends would say nothing: it goes once
    every pacer's sends are answered (successes are reported as they come)."""
    clock = Clock()
    _, pacers = _shared(clock)
    burst = await _at_the_reset(clock, pacers)
    for pacer, at in burst[:-1]:
        pacer.on_success(at)
    assert _admit_all(pacers) == []  # one answer missing: no probe yet
    pacer, at = burst[-1]
    pacer.on_success(at)
    assert len(_admit_all(pacers)) == 1


async def test_a_probe_accepted_opens_the_next_window_for_everyone() -> None:
    """The window grew, or reset unseen: the probe's success doubles the allowance at
    once, for everyone, the probe in it (W - 1 more), in the same window, so the next
    W counts them all (``tests/test_pacing_window_changes.py``)."""
    clock = Clock()
    _, pacers = _shared(clock)
    for pacer, at in await _at_the_reset(clock, pacers):
        pacer.on_success(at)
    [(prober, at)] = _admit_all(pacers)
    prober.on_success(at)
    assert len(_admit_all(pacers)) == W - 1


async def test_a_lost_answer_holds_the_probe_back_at_most_answer_wait() -> None:
    """A send whose answer never comes (an error, a crashed process) does not hold the
    window shut: the probe goes ``ANSWER_WAIT`` after the last grant."""
    from opentrain_async._pacing.allowance import ANSWER_WAIT

    clock = Clock()
    _, pacers = _shared(clock)
    burst = await _at_the_reset(clock, pacers)
    for pacer, at in burst[1:]:
        pacer.on_success(at)
    assert _admit_all(pacers) == []
    clock.now += ANSWER_WAIT
    assert len(_admit_all(pacers)) == 1
