"""``benchmarks.family_timeline``: one draw of the family as its limiter saw it.

The timeline is read to find where a draw's time went, so its counts must be the
limiter's own: every message admitted once, every 429 the runner counted refused
once, and no wait longer than the limiter can ask for.  Virtual time: nothing waits."""

from __future__ import annotations

import pytest

from benchmarks.family import draw
from benchmarks.family_timeline import main, timeline

from .pacing_kit import command_output


@pytest.mark.parametrize("runner", ["opentrain_async", "aiohttp-retry"])
def test_the_timeline_counts_what_the_limiter_answered(runner: str) -> None:
    d = draw(330)  # a sliding window of 6 per 1.34 s, header hints: 18 messages
    assert d.kind == "sliding"
    result, rows = timeline(330, step=0.1, runner=runner)
    assert result.delivered == d.n
    assert sum(row.admitted for row in rows) == d.n
    assert sum(row.refused for row in rows) == result.throttled > 0
    assert 0 < max(row.longest_wait for row in rows) <= d.window
    # The last request admitted falls in the step of the draw's end, less the trip back.
    last = max(i for i, row in enumerate(rows) if row.admitted)
    assert last * 0.1 <= result.seconds


def test_the_command_prints_one_line_per_busy_step(capsys: pytest.CaptureFixture[str]) -> None:
    out = command_output(main, ["330", "--step", "0.5"], capsys).splitlines()
    assert out[0].startswith("seed 330: sliding window 6/1.34s")
    assert "429s" in out[1]
    steps = [line.split() for line in out[3:]]
    assert steps
    assert all(int(s[1]) + int(s[2]) > 0 for s in steps)
    assert sum(int(s[1]) for s in steps) == draw(330).n


def test_the_untuned_option_runs_issue_19s_untuned_draw(capsys: pytest.CaptureFixture[str]) -> None:
    out = command_output(
        main, ["3", "--untuned", "0.2,exact", "--step", "0.5"], capsys
    ).splitlines()
    assert out[0] == "seed 3: bucket 300/s burst 10; hints exact; 200 ms +-10%; 1 proc; n 900"
    steps = [line.split() for line in out[3:]]
    assert sum(int(s[1]) for s in steps) == 900
