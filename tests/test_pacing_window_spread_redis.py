"""The Lua scripts on a real redis-server agree with ``allowance`` where a window's W
goes spread over its last reopening (``tests/test_pacing_window_spread.py`` in
process): the first and last success a report records, the stretch a window learns as
it opens, and W's sends held to their times in it."""

from __future__ import annotations

import math

import redis.asyncio as redis_asyncio

from opentrain_async._pacing.state import PacingFeedback, PacingState

from .pacing_kit import lua_report_agrees, lua_reserve_agrees, opened_window
from .test_pacing_redis import redis_now

W = 10
T = 1.0


def _window(now: float, **changes: object) -> PacingState:
    """A window of W per T opened at its reset 0.1 s ago, W sent, 4 answers in."""
    opened = {"successes": W + 4, "win_base": W, "limit": 1500.0}
    return opened_window(W, T, now - 0.1, W, **{**opened, **changes})


async def test_report_records_the_windows_first_and_last_success(
    redis: redis_asyncio.Redis,
) -> None:
    """A success admitted in the window widens its first to last; one of an earlier
    window (admitted before the reset) and one of the probe (admitted at its grant, past
    W) do not: in Lua as in Python."""
    cases = [(0.05, {}, True), (-0.5, {}, False), (0.08, {"win_sent": W + 1}, False)]
    for admitted, changes, widened in cases:
        now = await redis_now(redis)
        before = _window(now, win_first=now - 0.1, win_last=now - 0.08, **changes)
        if "win_sent" in changes:
            before = _window(now, win_granted=now - 0.02, **changes)
        feedback = PacingFeedback(successes=1, latest_accepted=now - 0.1 + admitted)
        got, _ = await lua_report_agrees(redis, "spread-report", before, feedback)
        moved = (got.win_first, got.win_last) != (before.win_first, before.win_last)
        assert moved is widened, admitted


async def test_reserve_learns_the_stretch_and_holds_ws_sends_to_it(
    redis: redis_asyncio.Redis,
) -> None:
    """A reset due after a window whose own sends drew 429s, its successes admitted over
    0.3 s: the new window learns 0.3 s and hands out its first send alone; one with a
    stretch learned, part of W sent, holds the next send to its time (none now, ask by
    then) or hands out those due: in Lua as in Python."""
    now = await redis_now(redis)
    refused = _window(
        now - 1.0,
        win_reset=now - 0.001,
        pause_until=now - 0.001,
        throttles=3,
        successes=W + 7,
        win_first=now - 1.1,
        win_last=now - 0.8,
    )
    held = _window(now, win_stretch=0.5, win_sent=6, win_opened=now - 0.1)
    due = _window(now, win_stretch=0.5, win_sent=2, win_opened=now - 0.1)
    results = []
    for before in (refused, held, due):
        after, got, _, _ = await lua_reserve_agrees(redis, "spread", before, 5)
        results.append((after, got))
    (opened, first), (_, later), (_, now_due) = results
    assert math.isclose(opened.win_stretch, 0.3, abs_tol=1e-6)
    # W's first send alone: one slot per 0.03 s (0.3 s / W) from the reset, so on a
    # loaded machine, where the script ran later than ``now``, those due by then too
    slot = 0.3 / W
    late = first.now - now
    assert first.count == 1 or late > slot
    assert first.count <= 2 + late / slot
    assert later.count == 0
    assert later.first > later.now + 0.1  # the 7th of 10 at 0.3 s into the window
    assert now_due.count == 1  # the 3rd at 0.1 s: due now, the 4th not yet
