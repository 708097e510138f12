"""The Lua scripts on a real redis-server agree with ``allowance.predicted_reset``
(``tests/test_pacing_window_period.py`` in process): the first reservation noted, the
window's length learned at its first wall, a later wall's pause ended by it, and the
length dropped when the window proves longer."""

from __future__ import annotations

import math
import random

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.redis_state import decode_state
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .pacing_kit import known_window, lua_report_agrees, lua_reserve_agrees
from .test_pacing_redis import random_state, redis_now

W = 10
T = 1.3


async def test_the_first_reservation_is_noted(redis: redis_asyncio.Redis) -> None:
    """``began``: set by the first reservation, kept by later ones."""
    now = await redis_now(redis)
    got, _, want, _ = await lua_reserve_agrees(redis, "period-reserve", PacingState(), 1)
    assert got.began == want.began >= now
    again = attrs.evolve(got, began=now - 5)
    got, _, want, _ = await lua_reserve_agrees(redis, "period-reserve", again, 1)
    assert got.began == want.began == now - 5
    assert decode_state({}).began == -math.inf


async def test_reports_learn_use_and_drop_the_length(redis: redis_asyncio.Redis) -> None:
    """Random walls around the three cases: the first wall (no window opened) learns the
    length; a later window's probe refused with a rounded hint ends its pause at the
    opening plus it; a refusal past that, or of W's own sends, drops it."""
    rng = random.Random(5)
    learned = used = dropped = 0
    for _ in range(120):
        now = await redis_now(redis)
        reset = now + rng.uniform(0.01, 2)
        first = rng.random() < 0.3
        opened = now - rng.uniform(0.05, 1.5)
        state = known_window(
            W,
            2.0,
            reset,
            began=rng.choice([-math.inf, now - rng.uniform(0, 2)]),
            win_period=rng.choice([0.0, rng.uniform(0.5, 2.5)]),
            pause_began=now - rng.uniform(0, 1),
        )
        if not first:
            sent = rng.choice([W, W + 1])
            state = attrs.evolve(
                state,
                win_opened=opened,
                win_size=W,
                win_sent=sent,
                win_granted=opened + rng.uniform(0, 0.3),
                win_reset=rng.choice([opened, now - 0.5]),
                pause_until=rng.choice([0.0, opened]),
            )
        if rng.random() < 0.2:
            state = attrs.evolve(state, **_other_fields(rng, now))
        feedback = PacingFeedback(
            throttled=True,
            throttled_at=rng.choice(
                [now - rng.uniform(0, 0.3), opened + rng.uniform(0, 0.5), now - 1.6]
            ),
            retry_after=rng.choice([1.0, 2.0, 3.0, 0.7, None]),
        )
        got, _ = await lua_report_agrees(redis, "period-report", state, feedback)
        learned += got.win_period > 0 == state.win_period
        predicted = state.win_opened + state.win_period
        used += got.win_period > 0 and math.isclose(got.pause_until, predicted, abs_tol=1e-6)
        dropped += state.win_period > 0 == got.win_period
    assert learned
    assert used
    assert dropped


def _other_fields(rng: random.Random, now: float) -> dict[str, object]:
    """A few fields of a random state on top (samples, cuts, the curve)."""
    other = random_state(rng, now)
    return {name: getattr(other, name) for name in ("accepted", "offered", "sample_at", "cuts")}
