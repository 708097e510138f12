"""A window's wall of rounded hints: each 429 says the reset comes within (h - 1, h]
of its answer, so the earliest bound binds and a later one of the same wall adds
nothing; a bulk send's retry sleeps only to the reset's earliest and leaves the rest
to the pacer's pause.

One pacer on an injected clock, driven call by call against the fake server's sliding
window (``backend._pause``, ``RetryPolicy.compute_wait``).
"""

from __future__ import annotations

import math

from opentrain_async import Pacer, RateLimitError, RetryPolicy
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingState
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .step_clock import Clock

W, WINDOW = 10, 1.9


def _window_pacer(clock: Clock) -> tuple[InMemoryPacingBackend, Pacer]:
    """A window learned from a rounded hint of 2 s (W not known yet), its reset now."""
    state = PacingState(
        limit=W / WINDOW,
        searching=False,
        origin=clock.now - WINDOW,
        cut_at=clock.now - WINDOW,
        cuts=2,
        window_hint=2.0,
        pause_until=clock.now,
        win_reset=clock.now,
    )
    backend = InMemoryPacingBackend(clock=clock, state=state)
    pacer = Pacer(backend=backend, clock=clock, sleep=clock.sleep)
    pacer._become_paced()  # as its first reservation of a known window does
    return backend, pacer


async def test_a_later_429_of_the_wall_does_not_push_its_pause() -> None:
    """14 sends at once into a sliding window of 10 per 1.9 s: 4 refused, answered
    0.3, 0.4, 0.5 and 0.6 s later, each with the server's wait rounded up to 2 s.  The
    reset comes no later than the first answer's bound (2.3 s); each later 429 pushed
    the pause to its own bound (2.6 s here; seed 5996, 14 per 1.53 s: a wall's 28 429s
    held the next window 0.7 s past the reset)."""
    clock = Clock()
    start = clock.now
    backend, pacer = _window_pacer(clock)
    server = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    sent = [pacer.try_acquire() for _ in range(14)]
    assert None not in sent
    waits = [server.acquire(clock.now) for _ in sent]
    refused = [at for at, wait in zip(sent, waits, strict=True) if wait is not None]
    assert len(refused) == 4
    for at in sent[:W]:
        pacer.on_success(at)  # type: ignore[arg-type]
    for answered, at in zip((0.3, 0.4, 0.5, 0.6), refused, strict=True):
        clock.now = start + answered
        hint = float(math.ceil(start + WINDOW - clock.now))
        assert hint == 2.0
        await pacer.on_throttle(at, hint)  # type: ignore[arg-type]
    state = backend.state
    assert state.window_hint == 2.0  # still a window
    assert state.pause_until == start + 2.3 == state.win_reset
    clock.now = start + 2.3
    assert pacer.try_acquire() is not None


def _refused(hint: float) -> RateLimitError:
    return RateLimitError("slow down", status=429, retry_after=hint)


def test_a_bulk_retry_sleeps_to_the_resets_earliest() -> None:
    """A bulk send's 429 with a whole hint of h >= 2 s sleeps h - 1 (the reset comes
    after that) and then waits for the pacer's admission, whose pause ends at the wall's
    earliest bound: every refused request slept its own 2 s plus jitter holding its
    place in flight (seed 5040, 150 per 1.9 s: all 64 asleep, admissions resumed at
    2.8 s).  Outside bulk the hint is still waited out in full."""
    policy = RetryPolicy(random=lambda: 1.0)
    two, five = _refused(2.0), _refused(5.0)
    assert policy.compute_wait(two, 1, paced=True) == 1.0
    assert policy.compute_wait(two, 3, paced=True) == 1.0
    assert policy.compute_wait(five, 1, paced=True) == 4.0
    assert policy.compute_wait(two, 1) > 2.0  # the hint and its jitter
    assert policy.compute_wait(_refused(2.5), 1, paced=True) > 2.5  # exact: waited out
