"""The simulator's per-draw timeline (``benchmarks.family_sim --only SEED --timeline``):
every arrival at the limiter is traced once, admitted or refused, so a pacer's first
contact, cuts and pauses can be read beside the oracle's.  Virtual time."""

from __future__ import annotations

import logging

import pytest

from benchmarks.family import Draw
from benchmarks.family_sim import main, run_draw


def small_bucket() -> Draw:
    """A bucket of 50/s with a burst of 4, 40 ms away, 60 messages: 429s are certain."""
    return Draw(3, "bucket", 50.0, 4, 0.0, (), "exact", 0.04, 0.1, 1, 60)


@pytest.mark.parametrize("runner", ["opentrain_async", "oracle"])
def test_the_trace_holds_each_arrival_once_in_time_order(runner: str) -> None:
    trace: list[tuple[float, bool]] = []
    result = run_draw(small_bucket(), runner, trace=trace)
    assert sum(admitted for _, admitted in trace) == result.delivered == 60
    assert sum(not admitted for _, admitted in trace) == result.throttled
    times = [at for at, _ in trace]
    assert times == sorted(times)
    assert times[0] > 0
    assert times[-1] <= result.seconds


def test_tracing_does_not_change_the_draw() -> None:
    assert run_draw(small_bucket(), trace=[]) == run_draw(small_bucket())


def test_the_timeline_prints_one_row_per_runner(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("opentrain_async")
    level = logger.level
    try:  # main() quiets the SDK's log for hundreds of draws: not for later tests
        main(["--only", "2", "--runners", "opentrain_async,oracle", "--timeline", "0.1"])
    finally:
        logger.setLevel(level)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("seed 2: ")
    assert [line.split()[0] for line in out[1::2]] == ["opentrain_async", "oracle"]
    assert all(line.startswith("  0.") for line in out[2::2])
