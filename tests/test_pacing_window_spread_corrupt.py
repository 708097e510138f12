"""A window's spread from a stretch no pacer writes: W still goes within its window.

``win_stretch`` is capped at half the hint when a window opens (``allowance._open``),
but a state can hold any number until then: a hash written by hand or another program,
a hint that shrank.  Taken as is, an infinite stretch held the window's second send
until ``inf`` (the pacer slept for ever), a 1e12 s one for millennia, one of 50 s past
the window's end, and one of 5e-324 s raised ``OverflowError`` out of ``reserve``.
Read at most half the hint (as ``_open`` would have capped it), W goes spread over that.
"""

from __future__ import annotations

import math

import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend, apply_reserve
from opentrain_async._pacing.state import PacingState, PacingTuning
from opentrain_async.testing import FakeTime

from .pacing_kit import opened_window

W, HINT = 10, 1.0
STRETCHES = [math.inf, 1e12, 50.0, 5e-324, 1e-300]


def corrupt_window(now: float, stretch: float, sent: int = 1) -> PacingState:
    """A window of W per HINT opened at ``now``, ``sent`` of W gone, ``stretch`` in it."""
    return opened_window(W, HINT, now, sent, win_stretch=stretch)


@pytest.mark.parametrize("late", [0.0, 0.1])
@pytest.mark.parametrize("stretch", STRETCHES)
def test_a_stretch_no_pacer_writes_spreads_w_within_its_window(stretch: float, late: float) -> None:
    """Every send of W is handed out within the window (at most half the hint in), asked
    for at its reset or ``late`` after it."""
    tuning = PacingTuning()
    now = 1000.0
    state, times = corrupt_window(now, stretch, sent=0), []
    at = now + late
    while len(times) < W:
        state, got = apply_reserve(state, at, W, 0, None, tuning)
        assert math.isfinite(got.first)
        times += [got.first] * got.count
        at = max(at, got.first - tuning.horizon) if not got.count else got.first
        assert at <= now + HINT / 2 + 1e-9
    assert max(times) <= now + HINT / 2 + 1e-9


async def test_a_pacer_on_an_infinite_stretch_sends_its_window() -> None:
    """A pacer whose state says an infinite stretch: its sends go within the window."""
    time = FakeTime(start=1000.0)
    backend = InMemoryPacingBackend(clock=time.clock, state=corrupt_window(1000.0, math.inf))
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    for _ in range(W - 1):
        assert await pacer.acquire() <= 1000.0 + HINT / 2 + 1e-9
