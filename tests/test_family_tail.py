"""``benchmarks.family_tail``: where each draw's time splits into the bulk and the tail.

The split is read to say how much of a gap the job's last messages make, so it must
stand on the limiter's own admissions: with every message counted the tail is nothing
(the simulated server answers at once), the split never falls after the end, and the
ratio with the tail cut is never above the ratio.  Virtual time: nothing waits."""

from __future__ import annotations

import pytest

from benchmarks.family import draw
from benchmarks.family_tail import main, tail

from .pacing_kit import command_output


@pytest.mark.parametrize("runner", ["opentrain_async", "oracle"])
def test_the_split_stands_on_the_limiters_admissions(runner: str) -> None:
    d = draw(330)  # a sliding window of 6 per 1.34 s, header hints: 18 messages
    whole = tail(d, runner, share=1.0)
    assert whole.result.delivered == d.n
    assert whole.tail == pytest.approx(0.0, abs=1e-9)  # the last admission ends the job
    most = tail(d, runner, share=0.5)
    assert 0 < most.at_share < whole.at_share
    assert 0 <= most.ideal_tail <= most.result.ideal
    assert most.ideal_at_share <= most.result.ideal
    assert most.at_share / most.result.ideal <= most.cut <= most.result.ratio


def test_the_command_prints_each_runner_by_hints_and_kind(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = command_output(
        main, ["--draws", "2", "--first", "330", "--runners", "opentrain_async"], capsys
    )
    assert "opentrain_async: all    2  median" in out
    assert "of the gap" in out
    assert "  hints header" in out
