"""A short window whose hints are rounded up to whole seconds (``whole``, or the
``Retry-After`` header alone): its wall's 429s say 2 s and then 1 s as its reset comes
within the second, and each is an upper bound on when it resets.

One pacer on an injected clock, driven call by call against the fake server's fixed
window (``allowance.bounds_reset``).
"""

from __future__ import annotations

import math

import attrs

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingState
from opentrain_async.testing import FixedWindow, LimitSchedule
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import known_window, paced, probe_after_w
from .step_clock import Clock

W, WINDOW = 10, 1.5


def _window_pacer(clock: Clock) -> tuple[InMemoryPacingBackend, Pacer]:
    """A window learned from a rounded hint of 2 s (W not known yet), its reset now."""
    state = known_window(W, WINDOW, clock.now, window_hint=2.0, successes=0)
    backend = InMemoryPacingBackend(clock=clock, state=state)
    return backend, paced(clock, backend)


async def test_the_walls_rounded_hints_bound_its_reset() -> None:
    """14 sends at a reset of 10 per 1.5 s: 4 refused, their answers 0.45 s and 0.55 s
    later with the server's waits rounded up (1.05 s -> 2, 0.95 s -> 1).  The reset is
    no later than the earliest of those bounds (1.55 s), and a window it stays: the next
    window opens there.  The first 2 s used to be waited in full (the window opened at
    2.45 s, nearly a second late), and the 1 s hint taken for a bucket's left the
    window's mode for a curve cut to the window's average."""
    clock = Clock()
    start = clock.now
    backend, pacer = _window_pacer(clock)
    server = _ScheduleLimiter(LimitSchedule(((0.0, FixedWindow(limit=W, window=WINDOW)),)))
    sent = [pacer.try_acquire() for _ in range(14)]
    assert None not in sent  # W not known yet: as many as asked
    waits = [server.acquire(clock.now) for _ in sent]
    refused = [at for at, wait in zip(sent, waits, strict=True) if wait is not None]
    assert len(refused) == 4
    for at in sent[:W]:
        pacer.on_success(at)  # type: ignore[arg-type]
    for answered, ats in ((0.45, refused[:2]), (0.55, refused[2:])):
        clock.now = start + answered
        hint = float(math.ceil(start + WINDOW - clock.now))
        for at in ats:
            await pacer.on_throttle(at, hint)  # type: ignore[arg-type]
    state = backend.state
    assert state.window_hint == 2.0  # still a window
    assert state.pause_until == start + 1.55 == state.win_reset
    clock.now = start + 1.54
    assert pacer.try_acquire() is None
    clock.now = start + 1.55
    assert pacer.try_acquire() is not None
    assert backend.state.win_opened == start + 1.55


async def test_a_rounded_hint_after_the_reset_still_leaves_the_window_mode() -> None:
    """A 1 s hint for a request sent after the wall's pause began is no bound on that
    wall's reset: a window become a bucket, say (``test_pacing_window_changes``).  The
    window's mode is left as before."""
    clock = Clock()
    start = clock.now
    backend, pacer = _window_pacer(clock)
    first = pacer.try_acquire()
    assert first is not None
    clock.now = start + 0.3
    await pacer.on_throttle(first, 2.0)
    assert backend.state.window_hint == 2.0
    clock.now = start + 0.4
    await pacer.on_throttle(start + 0.35, 1.0)  # admitted after the pause began
    assert backend.state.window_hint == 0


async def test_the_probes_rounded_second_bounds_the_next_reset() -> None:
    """W = 10 sent at a reset of 10 per 1.2 s and accepted; the probe past W, answered
    0.3 s later, is refused with the server's 0.9 s rounded up to 1: the next reset comes
    within that second, so the next window opens then, in the window's mode.  The 1 s
    was taken for a bucket's and left the mode for the curve, whose rate set aside in
    the mode was a window's average cut per probe."""
    clock = Clock()
    start = clock.now
    backend, pacer = _window_pacer(clock)
    backend.state = PacingState(**{**attrs.asdict(backend.state, recurse=False), "win_size": W})
    probe = await probe_after_w(clock, pacer, W, start + 0.1)
    assert backend.state.win_sent == W + 1  # the probe past W
    clock.now = start + 0.4
    await pacer.on_throttle(probe, 1.0)
    state = backend.state
    assert state.window_hint == 2.0  # still a window
    assert state.pause_until == start + 1.4 == state.win_reset
    clock.now = start + 1.4
    assert pacer.try_acquire() is not None
    assert backend.state.win_opened == start + 1.4
