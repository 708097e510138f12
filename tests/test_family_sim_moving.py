"""``family_sim --moving`` keeps only the draws whose limit changes or flaps, and
``--save`` writes this SDK's ratio and 429 share per seed, so that two runs can be
compared draw by draw (how many got better or worse)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from benchmarks import family_sim
from benchmarks.family import Draw, draw


def _quick(d: Draw, runner: str = "opentrain_async") -> family_sim.Result:
    """A stand-in for the simulation: each draw's own numbers, no virtual time."""
    return family_sim.Result(
        runner, d, seconds=2.0 * d.ideal(), ideal=d.ideal(), throttled=1, delivered=d.n
    )


def test_moving_keeps_only_limits_that_move_and_save_writes_each_seed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(family_sim, "run_draw", _quick)
    seeds = range(7000, 7012)
    moving = [s for s in seeds if draw(s, max_window=2.0).changes]
    assert 0 < len(moving) < len(seeds)  # the test means something on these seeds
    saved = tmp_path / "per_draw.json"
    args = ["--draws", "12", "--first", "7000", "--max-window", "2", "--moving"]
    logger = logging.getLogger("opentrain_async")
    level = logger.level
    try:  # main() quiets the SDK's warnings; later tests in this worker count them
        family_sim.main([*args, "--runners", "opentrain_async", "--save", str(saved)])
    finally:
        logger.setLevel(level)
    assert f"{len(moving)} draws" in capsys.readouterr().out
    rows = json.loads(saved.read_text(encoding="utf-8"))
    assert sorted(int(seed) for seed in rows) == moving
    for seed in moving:
        d = draw(seed, max_window=2.0)
        assert rows[str(seed)] == pytest.approx([2.0, 1 / d.n])
