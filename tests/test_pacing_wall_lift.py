"""After a wall with no hint lifts, the pace resumes at what the wall's cycle admitted.

Processes sharing a state (the simulator's shared backend, a round trip from each:
processes on one Redis) behind a window that answers 429 with no ``Retry-After``.
Each process finds the wall on its own (``probe.WallProbe``); once it lifted, the pace
was the curve's: the cut the wall's first 429s drew (the rate of a burst the window
refused) and a climb back over 20 round trips, longer than the window.  Seed 5402 of
``benchmarks.family_sim --max-window 2`` (23 per 1.68 s, 14 processes, 150 ms) sent
its last 23 at 8/s where the oracle sends them at once: 2.60x, the oracle 1.01x.  Now
the lift reports the successes per second its cycle admitted (``PacingFeedback.lifted``)
and the curve resumes there (``curve.lift``).  The family's own draws, in virtual time
(``benchmarks.family_sim.run_draw``: clocks and sleeps the loop's, latency jitter
seeded).
"""

from __future__ import annotations

import pytest

from benchmarks.family import draw
from benchmarks.family_sim import run_draw
from opentrain_async._pacing.probe import WallProbe

from .step_clock import Clock


@pytest.mark.parametrize(
    ("seed", "before", "at_most"),
    [
        (5402, 2.60, 2.45),  # fixed 23 per 1.68 s, 14 processes: 2.29x
        (5075, 2.51, 2.20),  # sliding 54 per 1.12 s, x0.35 at 1.03 s, 4 processes: 1.85x
        (5171, 1.96, 1.80),  # fixed 21 per 1.68 s, flapping x0.35, 12 processes: 1.59x
    ],
)
def test_after_a_hintless_wall_lifts_processes_keep_the_windows_pace(
    seed: int, before: float, at_most: float
) -> None:
    """Every request delivered, in at most ``at_most`` times the window's own schedule
    (the draw's ideal; ``before``: the ratio on 53e7e5a, before ``curve.lift``)."""
    d = draw(seed, max_window=2.0)
    assert d.hints == "none"
    assert d.processes > 1
    result = run_draw(d)
    assert result.delivered == d.n
    assert result.ratio <= at_most < before


def test_a_lift_reports_what_its_cycle_admitted_above_the_pace() -> None:
    """``WallProbe.lifted``: the successes known (every pacer's) from the first send to
    the lift, per second of that cycle, when above the pace, once; the next wall's cycle
    runs from this lift.  Below the pace, or with no pace: nothing to report."""
    clock = Clock()
    probe = WallProbe(clock, clock.sleep)
    probe.accepted(0.0, count=1, pace=10.0)  # the first send: 1 success known
    for sent, paused in ((0.2, 0.25), (0.3, 0.4), (1.0, 1.2)):  # the wall: shut at 0.3
        probe.refused(sent, None, paused_until=paused, counts=True)
    assert probe.shut
    probe.accepted(1.6, count=24, pace=10.0)  # the probe: 24 through in 1.6 s
    assert probe.lifted == pytest.approx(24 / 1.6)
    assert probe.take_lifted() == pytest.approx(15.0)
    assert probe.lifted == 0.0
    for sent, paused in ((2.0, 2.05), (2.1, 2.2), (2.9, 3.0)):
        probe.refused(sent, None, paused_until=paused, counts=True)
    probe.accepted(3.2, count=30, pace=10.0)  # 6 more in 1.6 s: under the pace
    assert probe.lifted == 0.0
