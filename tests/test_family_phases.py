"""``benchmarks.family_phases``: the gap to the oracle at each share of a job.

The gaps are read to say where a job falls behind, so they must stand on the
limiter's own admissions: a runner beside itself has no gap anywhere (the draws are
deterministic per seed), and beside the oracle the gap at the whole job is the
difference of the two runs' last admissions.  Virtual time: nothing waits."""

from __future__ import annotations

import pytest

from benchmarks.family import draw
from benchmarks.family_phases import SHARES, gaps, main
from benchmarks.family_sim import run_draw

from .pacing_kit import command_output


def test_a_runner_beside_itself_has_no_gap() -> None:
    d = draw(330)  # a sliding window of 6 per 1.34 s, header hints: 18 messages
    assert gaps(d, "opentrain_async", "opentrain_async") == [0.0] * len(SHARES)


def test_the_last_gap_is_the_difference_of_the_last_admissions() -> None:
    d = draw(330)  # a sliding window of 6 per 1.34 s, header hints: 18 messages
    ours, oracle = run_draw(d), run_draw(d, "oracle")
    last = gaps(d)[-1]
    # Each run's seconds end with its last answer's trip back: the latency differs by
    # at most the jitter of one leg (the answer's) between the runs.
    expected = (ours.seconds - oracle.seconds) / ours.ideal
    assert last == pytest.approx(expected, abs=2 * d.latency * d.jitter / ours.ideal + 1e-9)
    assert last > 0  # the SDK, not told the limit, is behind at the end


def test_the_command_prints_medians_by_hints(capsys: pytest.CaptureFixture[str]) -> None:
    out = command_output(main, ["--draws", "2", "--first", "330"], capsys)
    assert "2 draws; median (this SDK - oracle) / ideal" in out
    assert "  all" in out
    assert "  hints header" in out
