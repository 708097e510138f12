"""A window of about 1.2 s behind rounded hints: its reset found by probes (``sounding``).

A sliding window of 30 per 1.2 s, every hint rounded up to whole seconds (as the
``Retry-After`` header alone gives it).  Its wall's 429s at 0 s say 2 (the server's
1.2 s), so the reset is somewhere in (1, 2] s; the pause waited the whole bound and
every window opened at 0, 2, 4 s (``benchmarks.family_timeline 7194 --max-window 2``:
1.64x).  A probe sent a second before a point a third of the way up, refused with 1
(not 2), says the reset is no later than that point: the second window opens there.
One pacer on the in-process backend, in virtual time (its clock and sleeps the
loop's).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.sounding import FEW, ResetSounder
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import known_window, paced
from .step_clock import Clock

W, WINDOW, N, WORKERS = 30, 1.2, 90, 40
LATENCY = 0.01  # seconds each way


async def _admissions() -> list[float]:
    """When each accepted request was admitted (from the job's start), N requests by
    WORKERS senders; a 429's request waits its hint unless the pacer says it waits it
    (``Pacer.paces_reset``, as a bulk send's retry asks)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    left = N
    accepted: list[float] = []

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            while True:
                sent_at = pacer.try_acquire()
                if sent_at is None:
                    sent_at = await pacer.acquire()
                await asyncio.sleep(LATENCY)
                wait = limiter.acquire(loop.time() - start)
                await asyncio.sleep(LATENCY)
                if wait is None:
                    pacer.on_success(sent_at)
                    accepted.append(sent_at - start)
                    break
                hint = float(max(math.ceil(wait), 1))  # rounded up to whole seconds
                await pacer.on_throttle(sent_at, hint)
                if not pacer.paces_reset(hint):
                    await asyncio.sleep(hint)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return sorted(accepted)


def test_a_short_windows_second_window_opens_well_before_its_rounded_bound() -> None:
    """The first window's W at once (slow start: 0.1 s); the second window's first
    admission at the probe's bound (1.47 s), not at the 2 s its wall's hints said
    (2.14 s before: 2 s after the wall's first 429)."""
    loop = VirtualTimeLoop()
    try:
        accepted = loop.run_until_complete(_admissions())
    finally:
        loop.close()
    assert len(accepted) == N
    assert accepted[W - 1] < 0.2  # the first window at once
    assert WINDOW <= accepted[W] < 1.6


def test_each_rounded_hint_bounds_the_reset_and_a_probe_splits_what_is_left() -> None:
    """A 429 answered at 0 s with 2 puts the reset in (1, 2]; the first of two probes
    tests 1.33 s (the points go up the interval in thirds), sent a second before it;
    its 1, answered at 0.35 s, caps the reset at 1.35 s, and no point left is a second
    or more ahead: no more probes."""
    sounder = ResetSounder()
    sounder.note(0.0, 0.0, 2.0, probes=2)
    assert (sounder.low, sounder.high) == (1.0, 2.0)
    assert sounder.due(0.0) == pytest.approx(1 / 3)
    sounder.sent(1 / 3)
    assert not sounder.answered(0.2)  # another request's answer
    assert sounder.answered(1 / 3)
    sounder.note(1 / 3, 0.35, 1.0)
    assert (sounder.low, sounder.high) == (1.0, 1.35)
    assert sounder.due(0.35) is None
    assert ResetSounder(enabled=False).due(0.0) is None


async def test_a_sounded_walls_requests_wait_for_the_pacer() -> None:
    """A pacer alone on its state sounds a short window's first wall (W of ``FEW`` or
    more through): the wall's refused requests wait for its pause, which ends near the
    reset, not each its own 2 s (``Pacer.paces_reset``).  Its state shared, or a wall it
    does not sound (a window of fewer), they keep their own hint."""
    for through, alone, paces in ((FEW, True, True), (FEW - 1, True, False), (FEW, False, False)):
        clock = Clock()
        start = clock.now
        state = known_window(through, WINDOW, start + WINDOW, window_hint=2.0)
        pacer = paced(clock, InMemoryPacingBackend(clock=clock, state=state))
        pacer.sounder.enabled = alone
        assert not pacer.paces_reset(2.0)  # no wall yet
        clock.now = start + 0.05
        await pacer.on_throttle(start, 2.0)
        assert pacer.state.window_hint == 2.0
        assert pacer.state.win_opened == -math.inf  # the first wall
        assert pacer.paces_reset(2.0) is paces
