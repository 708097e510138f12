"""The Lua scripts agree with the pure functions on the quiet probe (``curve.quiet_probe``):
a curve past its search, no window, its cut's round trip known, reserved and reported at
every point of its recovery: before the probe, on it, past the cubic's doubling; its
cut's round trip on both sides of the gate (``QUIET_TRIP``, 50 ms: shorter, no probe);
a wall seen or not (``walls``: seen, no probe), and walls' 429s reported, which count;
an exact hint seen or not (``hint_max``: seen, no probe), and exact hints reported; cut
``QUIET_CUTS`` times or fewer or more (more: no probe); and a 429 that cuts it keeps that
429's round trip (``trip``) for the next probe."""

from __future__ import annotations

import random

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.curve import QUIET_AFTER, QUIET_CUTS, QUIET_TRIP, quiet_probe
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .test_pacing_redis import assert_states_equal, random_state, redis_now, steady


def _quiet(rng: random.Random, now: float) -> PacingState:
    """A curve past its search with no window, anywhere in its recovery (or past twice
    it), its cut's round trip 1-50 ms (under the gate), 50 ms-0.3 s or unknown, no pause,
    a wall seen (a third of them) or not, an exact hint seen (a third) or not, cut up to
    ``QUIET_CUTS`` times (two thirds) or more."""
    recover = rng.choice([0.0, rng.uniform(0.3, 6)])
    return attrs.evolve(
        random_state(rng, now),
        limit=rng.uniform(1, 3000),
        searching=False,
        window_hint=0.0,
        win_size=0,
        pause_until=0.0,
        recover=recover,
        origin=now - rng.uniform(0, 2.5 * (recover or 0.3)),
        trip=rng.choice([0.0, rng.uniform(0.001, QUIET_TRIP), rng.uniform(QUIET_TRIP, 0.3)]),
        walls=rng.choice([0, 0, rng.randint(1, 5)]),
        hint_max=rng.choice([0.0, 0.0, rng.uniform(0.001, 2.0)]),
        cuts=rng.choice([rng.randint(0, QUIET_CUTS)] * 2 + [rng.randint(4, 9)]),
    )


def _gated(state: PacingState, now: float, recover: float) -> bool:
    """Past the probe's start with a known round trip under the gate, or a wall seen:
    no probe."""
    gate = 0 < state.trip < QUIET_TRIP or (state.trip >= QUIET_TRIP and state.walls > 0)
    return gate and now - state.origin > QUIET_AFTER * recover


def _hinted(state: PacingState, now: float, recover: float) -> bool:
    """Past the probe's start, its round trip long enough, no wall seen and few cuts,
    but an exact hint seen: no probe, by the hint's gate alone."""
    ungated = state.trip >= QUIET_TRIP and state.walls == 0 and state.cuts <= QUIET_CUTS
    return ungated and state.hint_max > 0 and now - state.origin > QUIET_AFTER * recover


def _recut(state: PacingState, now: float, recover: float) -> bool:
    """Past the probe's start, every other gate open, but cut more than ``QUIET_CUTS``
    times: no probe, by the cuts' gate alone."""
    ungated = state.trip >= QUIET_TRIP and state.walls == 0 and state.hint_max == 0
    return ungated and state.cuts > QUIET_CUTS and now - state.origin > QUIET_AFTER * recover


async def test_reserve_agrees_on_the_quiet_probe(redis: redis_asyncio.Redis) -> None:
    backend = steady(redis, "agree-quiet")
    rng = random.Random(53)
    probing = gated = hinted = recut = 0
    for _ in range(900):
        now = await redis_now(redis)
        before = _quiet(rng, now)
        await redis.delete("agree-quiet")
        await redis.hset("agree-quiet", mapping=encode_state(before))
        count = rng.randint(1, 20)
        got = await backend.in_redis._reserve(count, 0, None)
        after = decode_state(await redis.hgetall("agree-quiet"))
        want_state, want = apply_reserve(before, got.now, count, 0, None, backend.tuning)
        assert_states_equal(after, want_state)
        assert got.rate == pytest.approx(want.rate, rel=1e-9)
        assert got.first == pytest.approx(want.first, rel=1e-12, abs=1e-6)
        assert got.interval == pytest.approx(want.interval, rel=1e-9, abs=1e-9)
        recover = before.recover or backend.tuning.recover
        if quiet_probe(before, got.now - before.origin, recover) > 0:
            probing += 1
        gated += _gated(before, got.now, recover)
        hinted += _hinted(before, got.now, recover)
        recut += _recut(before, got.now, recover)
    assert probing >= 40  # the probe itself, not only the curve, was compared
    assert gated >= 20  # and curves it would have probed but for the gate
    assert hinted >= 20  # and but for an exact hint
    assert recut >= 20  # and but for the cuts


async def test_report_agrees_on_the_quiet_probe_and_its_cut(redis: redis_asyncio.Redis) -> None:
    backend = steady(redis, "agree-quiet-report")
    rng = random.Random(59)
    cuts = probing = gated = walled = hinted = recut = exact = 0
    for _ in range(900):
        now = await redis_now(redis)
        before = _quiet(rng, now)
        admitted = now - rng.uniform(0.001, 0.3)
        throttled = rng.random() < 0.7
        feedback = PacingFeedback(
            successes=rng.randint(0, 20),
            throttled=throttled,
            throttled_at=admitted if throttled else None,
            retry_after=rng.choice([None, rng.uniform(0.001, 0.02), 1.0]) if throttled else None,
            latest_accepted=now - rng.uniform(0, 0.2),
            walled=throttled and rng.random() < 0.3,
        )
        await redis.delete("agree-quiet-report")
        await redis.hset("agree-quiet-report", mapping=encode_state(before))
        got = await backend.in_redis._report(feedback, None)
        assert decode_state(await redis.hgetall("agree-quiet-report")) == got
        assert backend.in_redis._last is not None
        now = backend.in_redis._last[1]
        want = apply_report(before, now, feedback, None, backend.tuning)
        assert_states_equal(got, want)
        exact += want.hint_max > before.hint_max
        if feedback.walled:
            walled += 1
            assert want.walls == before.walls + 1
        if want.cuts > before.cuts:
            cuts += 1
            assert want.trip == pytest.approx(now - admitted, abs=1e-6)
        recover = before.recover or backend.tuning.recover
        if quiet_probe(before, now - before.origin, recover) > 0:
            probing += 1
        gated += _gated(before, now, recover)
        hinted += _hinted(before, now, recover)
        recut += _recut(before, now, recover)
    assert cuts >= 20
    assert walled >= 20
    assert probing >= 40
    assert gated >= 20
    assert hinted >= 20
    assert recut >= 20
    assert exact >= 20  # exact hints reported, which turn the probe off
