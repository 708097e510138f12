"""The Lua scripts agree with the pure functions on a sliding window's slot-wait 429s
(``allowance.slot_wait``, ``slot_waited``): the ramp's stretch and span kept as the first
window opens (``_open``), a W send's exact 429 claiming a slot inside the window (the
mode kept, its share given back, the spread behind, the window's length from the ramp's
span), one whose claim the window already proved false, and the spread held behind
(``_spread``), with a success report's earliest admission (``stretch_answers``)."""

from __future__ import annotations

import math
import random

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .test_pacing_redis import assert_states_equal, random_state, redis_now, steady


def _sliding(rng: random.Random, now: float) -> PacingState:
    """A window's mode after slow start's ramp: its first window open (or about to
    open), W partly sent, a ramp's stretch and span known or not, a slot-wait's pause
    or the reset's, the spread behind or not."""
    state = random_state(rng, now)
    hint = rng.choice([0.4, 1.2, 1.487, 2.0])
    opened = now - rng.uniform(0, 0.4)
    size = rng.randint(2, 120)
    first = opened + rng.uniform(-0.01, 0.2)
    return attrs.evolve(
        state,
        limit=rng.uniform(5, 500),
        window_hint=hint,
        win_size=size,
        win_sent=rng.choice([size, rng.randint(0, size), size + 1]),
        win_granted=rng.choice([opened, now - rng.uniform(0, 0.2)]),
        win_opened=rng.choice([opened, opened, -math.inf]),
        win_reset=rng.choice([opened, now - rng.uniform(0, 0.05), -math.inf]),
        pause_until=rng.choice([opened, now + rng.uniform(-0.05, 0.02), 0.0]),
        win_throttles=max(state.throttles - rng.randint(0, 20), 0),
        win_first=rng.choice([math.inf, first]),
        win_last=rng.choice([-math.inf, first + rng.uniform(0, 0.3), opened - 0.01]),
        win_stretch=rng.choice([0.0, 0.0, rng.uniform(0.01, 0.5)]),
        win_ramp=rng.choice([0.0, rng.uniform(0.05, 0.5)]),
        win_span=rng.choice([0.0, hint * rng.uniform(1.0, 2.5)]),
        win_behind=rng.choice([0.0, rng.uniform(0, 0.2), 5.0]),
        win_claim=rng.choice([-math.inf, opened + rng.uniform(0, 0.05), now - 1.0]),
    )


async def test_report_script_agrees_on_slot_waits(redis: redis_asyncio.Redis) -> None:
    """``pacing_report.lua`` takes a W send's exact 429s (a slot's, a wall's, a probe's,
    a proved-false claim's) and successes with their earliest admission as
    ``apply_report`` does."""
    backend = steady(redis, "agree-slot")
    rng = random.Random(83)
    seen: set[str] = set()
    for _ in range(500):
        now = await redis_now(redis)
        before = _sliding(rng, now)
        opened = before.win_opened if before.win_opened > -math.inf else now - 0.2
        sent = rng.choice([opened + rng.uniform(0, 0.1), opened - 0.05, before.pause_until])
        latest = rng.choice([None, now - rng.uniform(0, 0.3)])
        earliest = None if latest is None else rng.choice([None, latest - rng.uniform(0, 0.5)])
        feedback = PacingFeedback(
            successes=rng.choice([0, rng.randint(1, 10)]),
            throttled=rng.random() < 0.9,
            throttled_at=sent,
            retry_after=rng.choice([rng.uniform(0.0001, 0.05), rng.uniform(0.3, 1.4), 1.0]),
            latest_accepted=latest,
            earliest_accepted=earliest,
        )
        cap = rng.choice([None, None, None, rng.uniform(1, 3000)])
        await redis.delete("agree-slot")
        await redis.hset("agree-slot", mapping=encode_state(before))
        got = await backend.in_redis._report(feedback, cap)
        assert got == decode_state(await redis.hgetall("agree-slot"))
        now = backend.in_redis._last[1] if backend.in_redis._last is not None else now
        want = apply_report(before, now, feedback, cap, backend.tuning)
        assert_states_equal(got, want)
        if want.win_throttles > before.win_throttles and want.window_hint >= before.window_hint:
            if want.win_sent < before.win_sent:
                seen.add("slot")
            if want.win_behind > before.win_behind:
                seen.add("behind")
            if want.window_hint > before.window_hint:
                seen.add("span")
        elif feedback.throttled and want.window_hint == 0 and before.window_hint > 0:
            seen.add("left")
            late = sent - 2 * max(now - sent, 0)
            if late >= before.win_claim > before.win_last and feedback.retry_after < 0.1:
                seen.add("proved false")
        if earliest is not None and want.win_first == earliest < before.win_first:
            seen.add("earliest")
    assert {"slot", "behind", "span", "left", "proved false", "earliest"} <= seen


async def test_reserve_script_agrees_on_the_ramp_and_the_spread_behind(
    redis: redis_asyncio.Redis,
) -> None:
    """``pacing_reserve.lua`` keeps the ramp's stretch and span as the first window
    opens, and holds W's sends behind as ``apply_reserve`` does."""
    backend = steady(redis, "agree-slot-reserve")
    rng = random.Random(89)
    seen: set[str] = set()
    for _ in range(400):
        now = await redis_now(redis)
        before = _sliding(rng, now)
        if rng.random() < 0.4:  # the ramp's wall ends now: the first window opens
            first = now - rng.uniform(0.5, 1.5)
            before = attrs.evolve(
                before,
                win_opened=-math.inf,
                win_reset=now - 0.001,
                pause_until=now - 0.001,
                win_first=first,
                win_last=first + rng.uniform(0, 0.4),
                win_ramp=0.0,
                win_span=0.0,
            )
        count = rng.randint(1, 40)
        await redis.delete("agree-slot-reserve")
        await redis.hset("agree-slot-reserve", mapping=encode_state(before))
        got = await backend.in_redis._reserve(count, 0, None)
        after = decode_state(await redis.hgetall("agree-slot-reserve"))
        want_state, want = apply_reserve(before, got.now, count, 0, None, backend.tuning)
        assert_states_equal(after, want_state)
        assert got.count == want.count
        for name in ("first", "pause_until", "until"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-6)
        if want_state.win_ramp > 0 and before.win_ramp == 0:
            seen.add("ramp")
        if before.win_behind > 0 and not want.count and want_state.win_stretch:
            seen.add("held")
    assert {"ramp", "held"} <= seen
