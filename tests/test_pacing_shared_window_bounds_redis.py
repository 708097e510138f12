"""A shared window's hint no pacer would write, on a real redis-server: not obeyed.

A pacer caps every hint at ``max_hint_pause`` before it reports it, so a hash holding
``window_hint 1e9`` was edited by hand or by another program; obeyed, each cut of a
window's limit took three such hints to climb back (``curve.cut``), for good.
"""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    encode_state,
)
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .test_pacing_redis import redis_now

KEY = "opentrain:pacing:{window-bound}"
W = 30


async def test_a_window_hint_no_pacer_writes_is_paced_around(
    redis: redis_asyncio.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """``HSET window_hint 1e9`` on a known window of 30 per second: the first answer
    that carries the state (a success's report, at once in a window's mode) is
    unusable, so the process paces locally and says so; the state it paces with has
    no such window, and a 429's cut climbs back in seconds, not in 3e9 s."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    shared = RedisPacingBackend(redis, key=KEY, options=RedisPacingOptions(budget=5))
    now = await redis_now(redis)
    corrupt = PacingState(
        limit=float(W),
        searching=False,
        origin=now - 1.0,
        cut_at=now - 1.0,
        cuts=3,
        successes=W,
        window_hint=1e9,
        pause_until=now - 0.01,
        win_size=W,
        win_reset=now - 0.01,
    )
    await redis.hset(KEY, mapping=encode_state(corrupt))
    got = await shared.reserve(W)
    assert got.count >= 1
    state = await shared.report(PacingFeedback(successes=got.count, latest_accepted=got.first))
    state = await shared.report(
        PacingFeedback(throttled=True, throttled_at=got.first, retry_after=0.5)
    )
    tuning = shared.tuning
    assert state.window_hint <= tuning.max_hint_pause
    assert state.recover <= 3 * tuning.max_hint_pause
    assert not shared.shared
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unusable" in w and "window" in w for w in warnings)
    await shared.aclose()
