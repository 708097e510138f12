"""A sliding window whose hints are rounded or absent: the search restarted after its
wall reopens should read the window's own rate, not the wall (strict xfail).

With no hint to name a reset (none, or every hint rounded up to 1 s) a window of about
a second never enters the window's mode: slow start fills it, its wall pauses the
curve, and when it reopens the reset's burst meets slots freeing one by one (a sliding
window frees them in the shape they were filled).  Those 429s restarted the search from
what the limiter admitted since the search began, the wall counted in it: a window of
223 per 1.09 s read about 60/s and the second window took as long again
(``benchmarks.family_timeline 5183 --max-window 2``: 1.70x the ideal), one of 312
per 1.22 s shared by 14 processes 4/s (5397: 1.79x).  A window that
shut and reopened admits, per second, every success since the first over the time
since; branch slideround restarted the search no lower than that (not for an exact
hint), which passes this, but was dropped on the 429 share.  The draws are
the simulator's, in virtual time (the loop's clock; no real sleeps).
"""

from __future__ import annotations

import pytest

from benchmarks.family import draw
from benchmarks.family_sim import run_draw


@pytest.mark.xfail(
    strict=True,
    reason="the reopened window's reading (branch slideround, 41606ef) was dropped: judged "
    "on seeds 483000 it left the median and p90 as they were and raised the 429 share's "
    "p90 in all three runs (benchmarks/pacing-experiments.md, slideround)",
)
@pytest.mark.parametrize(
    ("seed", "base"),
    [
        (5183, 1.70),  # sliding 223 per 1.09 s, no hints, 61 ms, one process
        (5488, 1.73),  # sliding 39 per 1.07 s, header hints (whole seconds), 145 ms
        (5397, 1.78),  # sliding 312 per 1.22 s, whole hints, 182 ms, 14 processes
    ],
)
def test_a_reopened_sliding_window_is_not_read_with_its_wall(seed: int, base: float) -> None:
    """Each job within 1.55x of the ideal (5443c00: 1.70x, 1.73x and 1.79x, the last
    restarted at 4/s; branch slideround's 41606ef: 1.39x, 1.44x and 1.41x)."""
    result = run_draw(draw(seed, max_window=2.0), "opentrain_async")
    assert result.ratio < 1.55 < base
