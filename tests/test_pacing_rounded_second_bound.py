"""A wall whose rounded hints all say 1: the guessed pause stops at their bound.

A sliding window of 30 per 1 s, every hint rounded up to whole seconds: its W goes in
the first 0.1 s (slow start), so every refusal's wait is under a second and every hint
says 1.  That is no window's hint (``pause.says_reset``): the pause is a guess, 50 ms
doubling per refused probe.  But each 1 also says the limiter admits again within a
second of its answer, so the wall's first 429s (about 0.1 s) put the reset by about
1.1 s; the guesses doubled past it (a probe refused at about 0.8 s paused 0.8 s more),
and the second window's first admission came at 1.72 s.  With the bound
(``PacingState.wall_bound``) no guessed pause ends past it: 1.12 s, the same 429s.
One pacer on the in-process backend, in virtual time (clocks and sleeps the loop's).
"""

from __future__ import annotations

import asyncio
import math

import attrs

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer, PacingTuning
from opentrain_async._pacing.pause import on_hint
from opentrain_async._pacing.state import PacingState
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive, rounded_up

W, WINDOW, N, WORKERS = 30, 1.0, 90, 40
LATENCY = 0.01  # seconds each way


async def _job() -> tuple[list[float], list[float]]:
    """When each accepted request was admitted (from the job's start), and the hints of
    the refused ones: N requests by WORKERS senders, a 429's request waiting its hint
    unless the pacer says it waits it (``Pacer.paces_reset``, as a bulk send's retry)."""
    loop = asyncio.get_running_loop()
    pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    trace = await drive([pacer], limiter, N, workers=WORKERS, latency=LATENCY, hint=rounded_up)
    return sorted(trace.admitted), trace.hints


def test_a_wall_of_ones_reopens_by_the_bound_its_hints_say() -> None:
    """Every hint 1; the second window's first admission by the first 429s' bound
    (1.12 s; 1.72 s before branch ``round3``: the doubling guess past it), the job
    done by 3.1 s (3.70 s before), no more 429s than W and a few probes per wall."""
    loop = VirtualTimeLoop()
    try:
        accepted, hints = loop.run_until_complete(_job())
    finally:
        loop.close()
    assert len(accepted) == N
    assert set(hints) == {1.0}  # never a window's hint: the guessed pause throughout
    assert accepted[W - 1] < 0.2  # the first window at once
    assert WINDOW <= accepted[W] < 1.3
    assert accepted[-1] < 3.1
    assert len(hints) <= 40


def test_the_guessed_pause_stops_at_the_earliest_rounded_bound() -> None:
    """A 1 answered at 0.1 s bounds the reopening by 1.1 s; a later 1 (at 0.8 s) does
    not move it out, so the doubled guess (0.8 s from 0.8 s) is cut to 1.1 s.  Once
    the bound has passed, or a success was counted since it was set, the next 1 sets
    its own; no hint (or 0) bounds nothing."""
    tuning = PacingTuning()
    state = PacingState(limit=100.0, streak=4, pause_began=0.0)
    first = on_hint(state, 0.1, 0.09, 1.0, tuning)
    assert first.wall_bound == 1.1
    later = on_hint(first, 0.8, 0.79, 1.0, tuning)  # its streak doubled the guess to 0.8 s
    assert later.wall_bound == 1.1
    assert later.pause_until == 1.1
    passed = on_hint(later, 1.15, 1.12, 1.0, tuning)  # the probe at the bound refused
    assert passed.wall_bound == 2.15
    assert passed.pause_until == 2.15  # (the guess at its 1 s cap: no sooner, no later)
    took = on_hint(attrs.evolve(first, successes=1), 0.8, 0.79, 1.0, tuning)
    assert took.wall_bound == 1.8  # a success since took the slot the first one promised
    none = on_hint(PacingState(limit=100.0, streak=4, pause_began=0.0), 0.8, 0.79, None, tuning)
    assert none.wall_bound == -math.inf
    assert none.pause_until == 0.8 + 0.8
