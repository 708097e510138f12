"""The report script on a real redis-server agrees with ``pause.learn_window`` where an
exact hint is shorter than its own 429's round trip (no window) or not (a window's):
``tests/test_pacing_window_shorter_than_trip.py`` in process."""

from __future__ import annotations

import redis.asyncio as redis_asyncio

from opentrain_async._pacing.state import PacingFeedback

from .pacing_kit import lua_report_agrees
from .test_pacing_redis import redis_now
from .test_pacing_window_shorter_than_trip import HINT, past_the_search


async def test_report_agrees_on_a_hint_shorter_than_its_round_trip(
    redis: redis_asyncio.Redis,
) -> None:
    """Answered 120 ms after its admission, a hint of 19.7 ms (14 slots at 740/s)
    opens no window, nor lengthens one; answered at once, it opens one.  (The script's
    now is Redis's, read after two more round trips: "at once" leaves the whole hint
    for them, where 10 ms left 9.7 ms, which a loaded machine overran once.)"""
    for trip, known, learned in ((0.12, 0.0, 0.0), (0.12, 0.01, 0.01), (0.0, 0.0, HINT)):
        now = await redis_now(redis)
        before = past_the_search(now, window_hint=known)
        feedback = PacingFeedback(throttled=True, throttled_at=now - trip, retry_after=HINT)
        got, _ = await lua_report_agrees(redis, "short-trip", before, feedback)
        assert got.window_hint == learned
