"""``benchmarks.cut_reading``: each cut's accepted-rate reading beside the limiter's
admissions.  It wraps the backend's ``accepted_rate`` for one run: the wrap must not
outlive the run (later runs and tests read the real one), and each reading is
divided by what the limiter admitted.  Virtual time: nothing waits."""

from __future__ import annotations

import pytest

from benchmarks.cut_reading import main, readings
from benchmarks.family import draw
from opentrain_async._pacing import episode, samples

from .pacing_kit import command_output


def test_each_cut_is_read_beside_the_limiter_and_the_wrap_is_undone() -> None:
    d = draw(18, max_window=2)  # a bucket of 11.7/s, burst 8, no hints: 25 messages
    rows = readings(d)
    assert episode.accepted_rate is samples.accepted_rate
    assert rows  # its cuts read the accepted rate
    for against_admitted, against_rate in rows:  # each a reading of the same limiter
        assert 0.1 < against_admitted < 10
        assert 0.1 < against_rate < 10


def test_the_command_prints_both_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    out = command_output(main, ["--draws", "1", "--first", "18"], capsys)
    assert "1 steady single-process buckets" in out
    assert "reading / admitted" in out
    assert "reading / rate" in out
