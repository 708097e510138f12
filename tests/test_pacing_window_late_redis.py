"""The Lua scripts on a real redis-server agree with ``allowance`` where a window's sends
or answers come late (``tests/test_pacing_window_late.py`` in process): a window that
outlived its hint, a reset long past, an earlier window's answers reported late."""

from __future__ import annotations

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.state import PacingFeedback, PacingState

from .pacing_kit import lua_report_agrees, lua_reserve_agrees, opened_window
from .test_pacing_redis import redis_now

W = 20
T = 2.0


def _window(now: float, **changes: object) -> PacingState:
    """A window of W per T opened at its reset a second ago, W sent, all accepted."""
    return opened_window(W, T, now - 1.0, W, **{"successes": 3 * W, "win_base": 2 * W, **changes})


async def test_reserve_agrees_where_a_window_outlived_its_hint(
    redis: redis_asyncio.Redis,
) -> None:
    """Past its hint with answers missing (carried into the new window), with its W
    not all sent, and with its reset long past: Lua and Python open the same window."""
    now = await redis_now(redis)
    cases = [
        _window(now, win_opened=now - 2.5, win_reset=now - 2.5, successes=3 * W - 6),
        _window(now, win_opened=now - 4.1, win_reset=now - 4.1, win_sent=W // 2),
        _window(now, win_opened=now - 9.3, win_reset=now - 0.9 * T * 5, pause_until=now - 9),
    ]
    for before in cases:
        _, got, want_state, want = await lua_reserve_agrees(redis, "late", before, 5)
        assert got.first == want.first
        assert want_state.win_opened > before.win_opened  # a new window opened
    assert want_state.win_reset > before.win_reset  # the reset long past: the one of now


async def test_report_agrees_on_an_earlier_windows_answers(redis: redis_asyncio.Redis) -> None:
    """Successes admitted before the window's reset leave its W alone, in Lua as in
    Python, during the pause to the next reset too; those admitted after it count."""
    for admitted, stale, paused in ((-3.0, True, False), (0.5, False, False), (-3.0, True, True)):
        now = await redis_now(redis)
        before = _window(now)
        if paused:  # the probe refused: the next reset told
            before = attrs.evolve(before, pause_until=now + 1.0, win_reset=now + 1.0)
        feedback = PacingFeedback(successes=7, latest_accepted=before.win_opened + admitted)
        got, _ = await lua_report_agrees(redis, "late-report", before, feedback)
        assert (got.win_base - before.win_base == 7) is stale


async def test_report_agrees_on_an_earlier_windows_429(redis: redis_asyncio.Redis) -> None:
    """A 429 for a send admitted before the window could judge it (before its reset;
    opened unseen, before the window it carried sends from) is counted, as none of the
    window's refusals, and neither pauses nor resets, in Lua as in Python; one of this
    window's pauses to the hint."""
    cases = ((-3.0, 0.0, True), (0.5, 0.0, False), (-1.0, -T, False), (-2.5, -T, True))
    for admitted, reset, stale in cases:
        now = await redis_now(redis)
        before = _window(now)
        before = attrs.evolve(before, win_reset=before.win_opened + reset)
        feedback = PacingFeedback(
            throttled=True, throttled_at=before.win_opened + admitted, retry_after=0.5
        )
        got, _ = await lua_report_agrees(redis, "late-429", before, feedback)
        assert (got.pause_until == before.pause_until) is stale
        assert got.win_throttles - before.win_throttles == int(stale)
