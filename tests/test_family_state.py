"""``benchmarks.family_state``: one draw of the family as the shared pacing state saw it.

Read beside ``family_timeline`` to find what the pacer made of a draw's 429s, so it
must print every 429 reported, once, and leave the backend's functions as they were.
Virtual time: nothing waits."""

from __future__ import annotations

import pytest

import opentrain_async._pacing.backend as backend
from benchmarks.family_state import main

from .pacing_kit import command_output


def test_the_trace_prints_each_429_once(capsys: pytest.CaptureFixture[str]) -> None:
    report, reserve = backend.apply_report, backend.apply_reserve
    out = command_output(main, ["330"], capsys).splitlines()  # 6 per 1.34 s, 18 messages
    assert out[-2].startswith("seed 330: sliding window 6/1.34s")
    refused = [line for line in out if line.split()[1:2] == ["429"]]
    assert len(refused) == 13  # as ``family_sim --only 330`` counts them: 72.2% of 18
    assert all("hint=" in line and "W=" in line for line in refused)
    assert (backend.apply_report, backend.apply_reserve) == (report, reserve)
