"""The shared window's hostile cases on a real redis-server: the scripts every process
runs agree with the pure functions where the random agreement test seldom goes."""

from __future__ import annotations

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.allowance import ANSWER_WAIT
from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    encode_state,
)
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .test_pacing_redis import assert_states_equal, redis_now

W = 30
WINDOW = 2.0


def _backend(redis: redis_asyncio.Redis, key: str) -> RedisPacingBackend:
    return RedisPacingBackend(redis, key=key, options=RedisPacingOptions(budget=5))


def _window(now: float) -> PacingState:
    """A window of W per 2 s, its curve restarted by the last probe's 429 a window ago
    (so below the limit now), W sent and answered, the probe out."""
    return PacingState(
        limit=W / WINDOW,
        searching=False,
        origin=now - 0.05,
        recover=3 * WINDOW,
        cut_at=now - 0.05,
        cuts=5,
        successes=5 * W,
        successes_at_cut=4 * W,
        window_hint=WINDOW,
        pause_until=now - 0.05,
        win_size=W,
        win_opened=now - 0.05,
        win_base=4 * W,
        win_sent=W + 1,
        win_granted=now - 0.01,
        win_probed=5 * W,
        win_reset=now - 0.05,
    )


async def test_a_probes_429_keeps_the_limit_in_redis_too(redis: redis_asyncio.Redis) -> None:
    """The probe's 429 restarts the curve at the limit, not at the curve's rate below
    it (which shrank the limit by ``beta`` per window): the report script agrees."""
    backend = _backend(redis, "hostile-probe")
    now = await redis_now(redis)
    before = _window(now)
    await redis.hset("hostile-probe", mapping=encode_state(before))
    feedback = PacingFeedback(throttled=True, throttled_at=now - 0.005, retry_after=1.93)
    got = await backend.in_redis._report(feedback, None)
    assert backend.in_redis._last is not None
    want = apply_report(before, backend.in_redis._last[1], feedback, None, backend.tuning)
    assert_states_equal(got, want)
    assert got.limit == before.limit
    assert got.cuts == before.cuts + 1  # the curve restarted


async def test_a_lost_answer_and_a_grant_ahead_agree_in_redis(
    redis: redis_asyncio.Redis,
) -> None:
    """Answers missing at the first probe are counted into ``win_probed``; at a later
    one they are written off and their share goes again; a grant stamped ahead of
    Redis's clock does not hold the probe: the reserve script agrees with
    ``apply_reserve`` on each."""
    backend = _backend(redis, "hostile-reserve")
    for sent, granted_ahead in ((W, 0.0), (W + 1, 0.0), (W, 3600.0)):
        now = await redis_now(redis)
        before = _window(now)
        granted = now + granted_ahead if granted_ahead else now - ANSWER_WAIT - 0.01
        before = attrs.evolve(
            _window(now),
            win_sent=sent,
            successes=4 * W + sent - 3,  # three answers missing
            win_granted=granted,
        )
        await redis.delete("hostile-reserve")
        await redis.hset("hostile-reserve", mapping=encode_state(before))
        got = await backend.in_redis._reserve(5, 0, None)
        stored = await backend.in_redis._load()
        want_state, want = apply_reserve(before, got.now, 5, 0, None, backend.tuning)
        # The probe; past a probe, the lost answers' share of W again (3 less the probe).
        assert got.count == want.count == (1 if sent == W else 2)
        assert_states_equal(stored[0], want_state)
