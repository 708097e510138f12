"""A window of about 1.2 s behind rounded hints: its reset found by probes (``sounding``).

A sliding window of 30 per 1.2 s, every hint rounded up to whole seconds (as the
``Retry-After`` header alone gives it).  Its wall's 429s at 0 s say 2 (the server's
1.2 s), so the reset is somewhere in (1, 2] s; the pause waited the whole bound and
every window opened at 0, 2, 4 s (``benchmarks.family_timeline 7194 --max-window 2``:
1.64x).  A probe sent a second before a point a third of the way up, refused with 1
(not 2), says the reset is no later than that point: the second window opens there.
One pacer on the in-process backend, or two or eight sharing a state (the simulator's
shared backend, a round trip from each: processes on one Redis), in virtual time (clocks and
sleeps the loop's): the wall is sounded once for both, its interval and its probe in
the shared state.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop, _SharedBackend
from opentrain_async import Pacer, PacingTuning
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.sounding import (
    FEW,
    grant_probe,
    next_probe,
    note_wall,
    probe_answered,
    probe_due,
)
from opentrain_async._pacing.state import SHARED_INITIAL_WINDOW, SHARED_SYNC_EVERY
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive, known_window, paced, rounded_up
from .step_clock import Clock

W, WINDOW, N, WORKERS = 30, 1.2, 90, 40
LATENCY = 0.01  # seconds each way


async def _admissions(processes: int) -> list[float]:
    """When each accepted request was admitted (from the job's start), N requests by
    WORKERS senders (split among ``processes`` pacers sharing a state, if more than
    one); a 429's request waits its hint unless the pacer says it waits it
    (``Pacer.paces_reset``, as a bulk send's retry asks)."""
    loop = asyncio.get_running_loop()
    if processes == 1:
        pacers = [Pacer(clock=loop.time, sleep=asyncio.sleep)]
    else:
        tuning = PacingTuning(sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW)
        shared = _SharedBackend(tuning, loop.time)
        pacers = [
            Pacer(backend=shared, clock=loop.time, sleep=asyncio.sleep) for _ in range(processes)
        ]
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    trace = await drive(pacers, limiter, N, workers=WORKERS, latency=LATENCY, hint=rounded_up)
    return sorted(trace.admitted)


@pytest.mark.parametrize("processes", [1, 2, 8])
def test_a_short_windows_second_window_opens_well_before_its_rounded_bound(
    processes: int,
) -> None:
    """The first window's W at once (slow start: 0.1 s); the second window's first
    admission at the probe's bound (1.47 s alone, 1.52 s for two pacers sharing the
    state, 1.42 s for eight), not at the 2 s its wall's hints said (2.14 s before
    branch ``flip``: 2 s after the wall's first 429; two pacers sharing a state, 2.18 s
    before branch ``flipshared``: neither probed; eight, 2.08 s before branch
    ``round3``: the first 429 reported before most of W's successes, 5 of 30, so the
    wall was judged too small to sound and never judged again)."""
    loop = VirtualTimeLoop()
    try:
        accepted = loop.run_until_complete(_admissions(processes))
    finally:
        loop.close()
    assert len(accepted) == N
    assert accepted[W - 1] < 0.2  # the first window at once
    assert WINDOW <= accepted[W] < 1.6


def test_each_rounded_hint_bounds_the_reset_and_a_probe_splits_what_is_left() -> None:
    """A 429 answered at 0 s with 2 puts the reset in (1, 2]; the first of two probes
    tests 1.33 s (the points go up the interval in thirds), sent a second before it,
    granted to one reservation alone (the next asks again at its lease's end); its 1,
    answered at 0.35 s, caps the reset at 1.35 s, and no point left is a second or
    more ahead: no more probes.  A probe lost (its process died) goes again a lease
    later."""
    state = known_window(FEW, WINDOW, 2.0, window_hint=2.0, pause_began=0.0)
    state = note_wall(state, None, 0.0, 0.0, 2.0)
    assert (state.snd_low, state.snd_high, state.snd_left) == (1.0, 2.0, 2)
    assert probe_due(state, 0.0) == pytest.approx(1 / 3)
    assert grant_probe(state, 0.0) is None  # not yet
    out = grant_probe(state, 1 / 3)
    assert out is not None
    assert out.snd_out == 1 / 3
    assert grant_probe(out, 0.34) is None  # one out: nobody else's
    assert next_probe(out, 0.34) == pytest.approx(1 / 3 + 1.0)  # ask again by its lease's end
    lost = grant_probe(out, 1 / 3 + 1.0)  # never answered: another goes (as late)
    answered = probe_answered(out, 1 / 3)
    assert (answered.snd_out, answered.snd_left) == (-math.inf, 1)
    answered = note_wall(answered, None, 1 / 3, 0.35, 1.0)
    assert (answered.snd_low, answered.snd_high) == (1.0, 1.35)
    assert probe_due(answered, 0.35) is None
    assert next_probe(answered, 0.35) == math.inf
    assert lost is None or lost.snd_left == 2  # (past the wall's point: none)
    few = note_wall(known_window(FEW - 1, WINDOW, 2.0, window_hint=2.0), None, 0.0, 0.0, 2.0)
    assert few.snd_left == 0
    assert probe_due(few, 0.0) is None


async def test_a_sounded_walls_requests_wait_for_the_pacer() -> None:
    """A short window's first wall (W of ``FEW`` or more through) is sounded: the
    wall's refused requests wait for the pause, which ends near the reset, not each its
    own 2 s (``Pacer.paces_reset``).  A wall not sounded (a window of fewer): they keep
    their own hint."""
    for through, paces in ((FEW, True), (FEW - 1, False)):
        clock = Clock()
        start = clock.now
        state = known_window(through, WINDOW, start + WINDOW, window_hint=2.0)
        pacer = paced(clock, InMemoryPacingBackend(clock=clock, state=state))
        assert not pacer.paces_reset(2.0)  # no wall yet
        clock.now = start + 0.05
        await pacer.on_throttle(start, 2.0)
        assert pacer.state.window_hint == 2.0
        assert pacer.state.win_opened == -math.inf  # the first wall
        assert pacer.paces_reset(2.0) is paces
