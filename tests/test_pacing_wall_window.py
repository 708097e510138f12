"""A window whose hints never say it is one: every 429 rounded up to one second.

The limiter accepts a burst, refuses everything until its reset, and accepts again:
what a fixed window does, whatever its hints say.  The first wall that lifts after
holding long enough (``probe.WALL_HELD``) starts the window's mode at that reset
(``allowance.lifted``), W what the limiter accepted before the wall.  One pacer on an
injected clock, driven call by call against the fake server's fixed window.
"""

from __future__ import annotations

import math

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .step_clock import Clock

W, WINDOW, STEP = 20, 1.0, 0.01


def _pacer(clock: Clock, limit: float) -> tuple[InMemoryPacingBackend, Pacer]:
    """A limit learned well above the window's average (its fill rate), no window."""
    state = PacingState(
        limit=limit, searching=False, origin=clock.now - 5, cut_at=clock.now - 5, cuts=2
    )
    backend = InMemoryPacingBackend(clock=clock, state=state)
    pacer = Pacer(backend=backend, clock=clock, sleep=clock.sleep)
    pacer._become_paced()
    return backend, pacer


async def _drive(clock: Clock, pacer: Pacer, server: _ScheduleLimiter, until: float) -> int:
    """Every STEP, every send the pacer admits, answered at once (the server's wait
    rounded up to whole seconds: 1 in a window of a second); returns the accepted."""
    accepted = 0
    while clock.now < until:
        while (at := pacer.try_acquire()) is not None:
            wait = server.acquire(clock.now)
            if wait is None:
                accepted += 1
                pacer.on_success(at)
            else:
                await pacer.on_throttle(at, float(math.ceil(wait)))
        clock.now += STEP
    return accepted


async def test_a_wall_that_lifts_starts_the_windows_mode() -> None:
    """20 per second, paced at 40/s: the window fills in half a second, then refuses
    every probe (each 429 says 1) until it resets.  The probe that gets through opens
    the window's mode: the other 19 of W go at once, not at the curve's pace."""
    clock = Clock()
    start = clock.now
    backend, pacer = _pacer(clock, limit=2 * W / WINDOW)
    server = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=W, window=WINDOW)),)))
    accepted = await _drive(clock, pacer, server, start + WINDOW * 0.9)
    assert accepted == W
    assert backend.state.window_hint == 0  # every hint said 1: no window told
    await _drive(clock, pacer, server, start + WINDOW * 1.5)
    state = backend.state
    assert state.window_hint >= WINDOW  # the first send to the lift: the window at most
    assert state.win_size == W
    assert state.successes == 2 * W  # the second window filled at its reset, at once
    # Opened at the lift: the guessed pauses (doubling) found the reset 0.26 s late.
    assert start + WINDOW <= state.win_opened < start + WINDOW + 0.3


async def test_a_bucket_shared_with_others_never_starts_it() -> None:
    """The same wall, but another process's successes reach the shared state while it
    holds: the limiter admitted someone, so it is no window's wall (a bucket shared by
    processes refuses one process's probes while it admits the others')."""
    clock = Clock()
    start = clock.now
    backend, pacer = _pacer(clock, limit=2 * W / WINDOW)
    server = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=W, window=WINDOW)),)))
    await _drive(clock, pacer, server, start + WINDOW * 0.7)
    assert pacer.probe.shut
    backend.report_now(PacingFeedback(successes=1))
    await _drive(clock, pacer, server, start + WINDOW * 1.5)
    assert backend.state.window_hint == 0
