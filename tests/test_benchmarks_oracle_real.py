"""The oracle on the real stack (``benchmarks.family_run``'s ``oracle`` runners): plain
aiohttp told the draw's limit, against the fake server in its own process, on loopback.

Real time, by nature: these run a real server and a real client.  They hold what a
floor must never do (lose or repeat a message) and that a client told an exact limit
keeps to it.  No timing is asserted: only the server's own records and its 429 count.
"""

from __future__ import annotations

import pytest

from benchmarks.family import Draw
from benchmarks.family_run import REAL_ORACLES, run_one

pytestmark = pytest.mark.process  # the fake server runs in its own process

BUDGET = 30.0
"""Seconds before a run is cut (the draw takes about 0.6 s: never reached unless hung)."""


def tiny_bucket() -> Draw:
    """A bucket of 50/s with a burst of 10, 10 ms away without jitter, exact hints, 40
    messages from one process: 0.61 s at the strict ideal."""
    return Draw(3, "bucket", 50.0, 10, 0.0, (), "exact", 0.01, 0.0, 1, 40)


def test_every_oracle_delivers_each_message_exactly_once() -> None:
    for runner in REAL_ORACLES:
        row = run_one(tiny_bucket(), runner, BUDGET)
        assert row["timed_out"] is False, runner
        assert row["lost"] == 0, runner
        assert row["duplicated"] == 0, runner


def test_the_anchored_oracle_keeps_to_the_limit_it_was_told() -> None:
    """Anchored on the first answer, its aims land after each token: at most a stray
    refusal (the loop's timers and loopback vary by tenths of a ms; measured 0-1).  The
    plain ``oracle``, whose mirror starts at the first request's expected arrival, read
    27-30 429s on this draw: the first request reaches the server ~10 ms late (it opens
    a connection), so every later aim is early (``run_oracle``)."""
    d = tiny_bucket()
    row = run_one(d, "oracle-anchored", BUDGET)
    assert row["lost"] == row["duplicated"] == 0
    assert row["rate_limited"] <= d.n // 10
