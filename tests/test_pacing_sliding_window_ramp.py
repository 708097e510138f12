"""A sliding window met after slow start's ramp: its second window goes as the ramp's
slots free, not at once into slots still held (``allowance.slot_wait``).

A sliding window of 100 per 1.5 s with exact hints, 60 ms each way.  Slow start fills
the first window over its ramp (0-0.4 s), so its slots free over as long from the
first reset on, each a window after the send that took it.  The window's W sent at once
there met a few free slots; the rest were refused with the wait for the next (a few
milliseconds), taken for a bucket's hint: the window's mode was left and the curve cut
to the handful admitted, and the next 100 went at that rate.  Told a sliding window by
that 429, the pacer keeps the mode, gives each refused send's share back to go a slot
after the one its hint names, spreads the rest over the ramp's stretch and takes the
window's length from the ramp's first success to the reset.  One pacer on the
in-process backend, or two sharing a state (the simulator's shared backend, a round
trip from each: processes on one Redis), in virtual time (clocks and sleeps the
loop's).
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop, _SharedBackend
from opentrain_async import Pacer, PacingTuning
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.state import (
    SHARED_INITIAL_WINDOW,
    SHARED_SYNC_EVERY,
    PacingFeedback,
    PacingState,
)
from opentrain_async.testing import LimitSchedule, SlidingWindow
from opentrain_async.testing._limits import _ScheduleLimiter

from .pacing_kit import drive

W, WINDOW, N, WORKERS = 100, 1.5, 300, 64
LATENCY = 0.06  # seconds each way: slow start's ramp takes a few round trips


async def _run(processes: int) -> tuple[list[float], list[float]]:
    """When each accepted request was admitted and each 429 was answered (from the
    job's start), N requests by WORKERS senders (split among ``processes`` pacers
    sharing a state); a 429's request waits its exact hint, as a bulk send's retry
    does."""
    loop = asyncio.get_running_loop()
    if processes == 1:
        pacers = [Pacer(clock=loop.time, sleep=asyncio.sleep)]
    else:
        tuning = PacingTuning(sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW)
        shared = _SharedBackend(tuning, loop.time)
        pacers = [Pacer(backend=shared, clock=loop.time, sleep=asyncio.sleep) for _ in range(2)]
    limiter = _ScheduleLimiter(LimitSchedule(((0.0, SlidingWindow(limit=W, window=WINDOW)),)))
    trace = await drive(
        pacers, limiter, N, workers=WORKERS, latency=LATENCY, hint=_exact, paced_waits=False
    )
    return sorted(trace.admitted), sorted(trace.refused)


def _exact(now: float, wait: float) -> float:
    """Exact (fractional), as the server's wait."""
    return wait + 1e-4


@pytest.mark.parametrize("processes", [1, 2])
def test_a_sliding_windows_second_window_goes_as_the_ramps_slots_free(processes: int) -> None:
    """The reset's W at once still meets the ramp's slots (52-58 refused, answered at
    1.74 s: what tells a sliding window from a fixed one, which refuses none); after
    that, the second window's 100th admitted by 2.35 s (its slots free from 1.5 s to
    about 1.9 s) with at most 5 429s more in it, the job done by 4 s.  Before (a60ec89):
    the mode left at the reset's first slot-wait 429, the curve cut to the few admitted,
    the 100th at 2.58 s and 35 more 429s when the curve met the window again (one
    pacer), at 3.01 s (two); the job at 4.94 s and 5.95 s."""
    loop = VirtualTimeLoop()
    try:
        accepted, refused = loop.run_until_complete(_run(processes))
    finally:
        loop.close()
    assert len(accepted) == N
    assert accepted[W - 1] < 0.7  # the ramp: the first window
    assert accepted[W] >= WINDOW  # the second
    assert accepted[2 * W - 1] < 2.35
    assert len([t for t in refused if 1.8 <= t < 2 * WINDOW]) <= 5
    assert accepted[-1] < 4.0


def test_a_slot_claim_proved_false_leaves_the_mode() -> None:
    """A W send's exact 429 naming a slot 5 ms ahead keeps the window's mode (its share
    given back, the claim kept); a send admitted two round trips after that slot,
    refused again with no success admitted since, proves the claim false: its 429 is
    no slot's, judged as before this branch (a server naming slots that never free
    would otherwise hold the mode, each share refused again)."""
    tuning = PacingTuning()
    opened = 10.0
    state = PacingState(
        limit=200.0,
        window_hint=1.2,
        win_size=100,
        win_sent=100,
        win_opened=opened,
        win_reset=opened,
        pause_until=opened,
        win_granted=opened,
        win_ramp=0.4,
        win_span=1.5,
        successes=100,
        win_base=100,
    )
    now = opened + 0.12
    first = PacingFeedback(throttled=True, throttled_at=opened, retry_after=0.005)
    kept = apply_report(state, now, first, None, tuning)
    assert kept.window_hint == 1.5  # the ramp's span: the window's length
    assert (kept.win_sent, kept.win_stretch) == (99, 0.4)  # given back, spread
    assert kept.win_claim == pytest.approx(now + 0.005)
    sent = kept.win_claim + 0.3  # two round trips (0.12 s) past the slot it named
    again = PacingFeedback(throttled=True, throttled_at=sent, retry_after=0.005)
    judged = apply_report(kept, sent + 0.12, again, None, tuning)
    assert judged.win_sent == kept.win_sent  # proved false: no share given back ...
    assert judged.cuts == kept.cuts + 1  # ... and judged as any 429 (here a cut)
    success = PacingFeedback(successes=1, latest_accepted=kept.win_claim + 0.01)
    honoured = apply_report(kept, sent, success, None, tuning)  # a slot freed after all
    slot = apply_report(honoured, sent + 0.12, again, None, tuning)
    assert (slot.win_sent, slot.cuts) == (kept.win_sent - 1, kept.cuts)
