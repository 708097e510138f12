"""The Lua scripts agree with the pure functions on sounding a window's wall for every
process on the state (``sounding``): the probe granted to one reservation, the time the
others ask again (the next probe, or the lease's end of the one out), a probe's 429
(``_sounded``, ``probe_answered``) and a wall's rounded 429s (``note_wall``: a new
wall, one narrowed, a long window's, one given its probes once its W is reported),
over random states around a wall's pause."""

from __future__ import annotations

import asyncio
import math
import random

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .test_pacing_redis import assert_states_equal, random_state, redis_now, steady


def _walled(rng: random.Random, now: float) -> PacingState:
    """A window's mode paused by a wall whose pause ends at a reset, its sounding in
    any stage: none, probes left, one out (lately or past its lease), none left."""
    state = random_state(rng, now)
    reset = now + rng.choice([rng.uniform(0.01, 0.05), rng.uniform(0.1, 2.0), 1.5])
    high = rng.choice([-math.inf, reset, reset + rng.uniform(0, 0.3), now - 0.1])
    low = high - rng.uniform(0.05, 1.0) if high > -math.inf else -math.inf
    left = rng.randint(0, 2)
    if left and rng.random() < 0.3:  # a probe due now: its point a second ahead, or a bit less
        high = reset + rng.uniform(0, 0.3)
        point = now + 1 - rng.uniform(0, 0.04)
        low = (point * (left + 1) - high) / left
    return attrs.evolve(
        state,
        limit=rng.uniform(5, 500),
        window_hint=rng.choice([2.0, 2.0, 3.0]),
        pause_until=reset,
        win_reset=rng.choice([reset, reset, now - 1.0]),
        pause_began=now - rng.uniform(0, 1),
        win_size=rng.choice([0, rng.randint(1, 19), rng.randint(20, 60)]),
        snd_low=low,
        snd_high=high,
        snd_left=left,
        snd_probes=rng.choice([0, 2]),
        snd_out=rng.choice([-math.inf, now - rng.uniform(0, 0.9), now - rng.uniform(1.1, 3)]),
    )


async def test_reserve_script_agrees_on_a_walls_probes(redis: redis_asyncio.Redis) -> None:
    """``pacing_reserve.lua`` grants the probe, or says when to ask again, as
    ``apply_reserve`` does."""
    backend = steady(redis, "agree-sound")
    rng = random.Random(71)
    seen: set[str] = set()
    for _ in range(300):
        now = await redis_now(redis)
        before = _walled(rng, now)
        await redis.delete("agree-sound")
        await redis.hset("agree-sound", mapping=encode_state(before))
        count, successes = rng.randint(0, 40), rng.choice([0, rng.randint(1, 50)])
        cap = rng.choice([None, None, None, rng.uniform(1, 3000)])
        got = await backend.in_redis._reserve(count, successes, cap)
        after = decode_state(await redis.hgetall("agree-sound"))
        want_state, want = apply_reserve(before, got.now, count, successes, cap, backend.tuning)
        assert_states_equal(after, want_state)
        assert got.count == want.count
        for name in ("first", "pause_until", "until", "probe_at"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-6)
        if want.count == 1 and want.probe_at == want.first:
            seen.add("granted")
        elif want.probe_at < math.inf:
            seen.add("lease" if want_state.snd_out > got.now - 1 else "due")
    assert {"granted", "lease", "due"} <= seen


async def test_report_script_agrees_on_a_walls_429s(redis: redis_asyncio.Redis) -> None:
    """``pacing_report.lua`` takes a probe's 429 and a wall's rounded ones as
    ``apply_report`` does."""
    backend = steady(redis, "agree-sound-report")
    rng = random.Random(73)
    seen: set[str] = set()
    for _ in range(400):
        now = await redis_now(redis)
        before = _walled(rng, now)
        sounding = rng.random() < 0.4
        sent = rng.choice([before.snd_out, now - rng.uniform(0.01, 1.5), before.pause_began - 0.1])
        if sent == -math.inf:
            sent = now - 0.2
        feedback = PacingFeedback(
            successes=rng.choice([0, rng.randint(1, 30)]),
            throttled=True,
            throttled_at=sent,
            retry_after=rng.choice([1.0, 2.0, 2.0, 3.0, 0.7, None]),
            sounding=sounding,
        )
        cap = rng.choice([None, None, None, rng.uniform(1, 3000)])
        await redis.delete("agree-sound-report")
        await redis.hset("agree-sound-report", mapping=encode_state(before))
        got = await backend.in_redis._report(feedback, cap)
        assert got == decode_state(await redis.hgetall("agree-sound-report"))
        now = backend.in_redis._last[1] if backend.in_redis._last is not None else now
        want = apply_report(before, now, feedback, cap, backend.tuning)
        assert_states_equal(got, want)
        if want.snd_high != before.snd_high:
            new = want.snd_left == want.snd_probes and want.snd_low != before.snd_low
            seen.add("new wall" if new and want.snd_high > before.snd_high else "narrowed")
        if before.snd_probes and not want.snd_probes:
            seen.add("long")
        inside = want.snd_low >= before.snd_low and want.snd_high <= before.snd_high
        if not before.snd_probes and want.snd_probes and inside:
            seen.add("judged again")  # a wall given no probes at first, its W reported since
        if sounding and want.snd_out != before.snd_out:
            seen.add("answered")
        if sounding and want.pause_until < before.pause_until:
            seen.add("tightened")
    assert {"new wall", "narrowed", "long", "answered", "tightened", "judged again"} <= seen


async def test_sixteen_processes_on_redis_send_one_probe(redis: redis_asyncio.Redis) -> None:
    """Sixteen processes' reservations at once, a probe due: one is granted it, the
    others told to ask again at its lease's end; its 429 (``sounding``) frees the turn
    and counts one probe, and no other is granted meanwhile."""
    backends = [steady(redis, "sound-16") for _ in range(16)]
    await asyncio.gather(*(b.in_redis._reserve(1, 0, None) for b in backends))  # (loaded)
    now = await redis_now(redis)  # (the probe is due for 30 ms from here: LATE, less 20 ms)
    reset = now + 1.5
    point = now + 1 - 0.02  # the first probe's point: due now
    state = attrs.evolve(
        random_state(random.Random(5), now),
        limit=50.0,
        searching=False,
        window_hint=2.0,
        pause_until=reset,
        win_reset=reset,
        pause_began=now - 0.3,
        win_size=40,
        snd_low=(3 * point - reset) / 2,  # the first of two points up to the reset
        snd_high=reset,
        snd_left=2,
        snd_probes=2,
    )
    await redis.delete("sound-16")
    await redis.hset("sound-16", mapping=encode_state(state))
    got = await asyncio.gather(*(b.in_redis._reserve(8, 0, None) for b in backends))
    probes = [r for r in got if r.count == 1 and r.probe_at == r.first]
    assert len(probes) == 1
    assert sum(r.count for r in got) == 1
    assert all(r.probe_at == pytest.approx(probes[0].now + 1.0) for r in got if not r.count)
    sounded = PacingFeedback(throttled=True, throttled_at=probes[0].first, retry_after=1.0)
    after = await backends[0].in_redis._report(attrs.evolve(sounded, sounding=True), None)
    assert (after.snd_out, after.snd_left) == (-math.inf, 1)
    assert after.pause_until < reset  # its "no": the pause ends sooner, for all
