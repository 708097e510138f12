"""A window of seconds: the pacer sends each window's allowance at its reset.

Driven by hand on an injected clock: the server is a fixed window of 5 per 4 s that
answers exact hints (the time left to its reset).  The ideal sends 5 at each reset and
nothing between; pacing at the window's average (1.25/s) would need a window more.
"""

from __future__ import annotations

from opentrain_async import Pacer

from .step_clock import Clock

W = 5


def _admit_all(pacer: Pacer) -> list[float]:
    admitted = []
    while (at := pacer.try_acquire()) is not None:
        admitted.append(at)
        if len(admitted) > 50:
            break
    return admitted


async def _first_window(pacer: Pacer, clock: Clock) -> None:
    """Slow start finds the window: W accepted, then a 429 saying it resets in 3.6 s."""
    sent = 0
    while sent < W:
        at = await pacer.acquire()
        pacer.on_success(at)
        sent += 1
        clock.now += 0.01
    at = await pacer.acquire()
    await pacer.on_throttle(at, 3.6)  # exact: the window resets at 100.05 + 3.6


async def test_the_whole_allowance_goes_at_the_reset_then_one_probe() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    await _first_window(pacer, clock)
    reset = clock.now + 3.6
    assert pacer.state.window_hint > 0  # the hint said: a window of seconds
    clock.now = reset - 0.5
    assert pacer.try_acquire() is None  # nothing before the reset
    clock.now = reset
    burst = _admit_all(pacer)
    assert len(burst) == W  # all W at once, not one per 0.8 s
    for at in burst:
        pacer.on_success(at)
    probe = pacer.try_acquire()  # past W: one request at a time, to find the next reset
    assert probe is not None
    assert pacer.try_acquire() is None
    await pacer.on_throttle(probe, 3.9)
    clock.now += 3.9
    assert len(_admit_all(pacer)) == W  # the next window: W again, at its reset


async def test_a_probe_accepted_opens_a_window_with_what_the_last_one_took() -> None:
    """A limit that grew: the probe past W is accepted, so the allowance doubles at
    once, the probe in it (W - 1 more), in the same window: the next reset's W counts
    them all (``tests/test_pacing_window_changes.py``)."""
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    await _first_window(pacer, clock)
    clock.now += 3.6
    burst = _admit_all(pacer)
    assert len(burst) == W
    for at in burst:
        pacer.on_success(at)
    probe = pacer.try_acquire()
    assert probe is not None
    pacer.on_success(probe)
    assert len(_admit_all(pacer)) == W - 1


async def test_a_stated_limit_is_never_burst() -> None:
    """With ``rate_limit`` the user asked for even spacing: no allowance burst."""
    clock = Clock()
    pacer = Pacer(rate_limit=1.25, clock=clock, sleep=clock.sleep)
    await _first_window(pacer, clock)
    clock.now += 3.6
    assert len(_admit_all(pacer)) <= 1
