"""The Redis pacing backend against a real redis-server: the Lua script agrees with the
pure functions, reports are atomic across processes, keys, URLs and secrets."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
from typing import Any

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import ConfigurationError, OpenTrainClient, Pacer, PacingTuning
from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.redis_backend import (
    RedisPacingBackend,
    RedisPacingOptions,
    backend_from_url,
    decode_state,
    encode_state,
    pacing_key,
    parse_pacing_url,
    redact_url,
)
from opentrain_async._pacing.state import (
    SAMPLE_BUCKETS,
    SAMPLE_SECONDS,
    SHARED_SYNC_EVERY,
    PacingFeedback,
    PacingState,
)

from .redis_server import RedisServer


def steady(redis: redis_asyncio.Redis, key: str) -> RedisPacingBackend:
    """A backend whose budget no loaded CI machine exceeds (these tests are about the
    shared state, not about a slow Redis)."""
    return RedisPacingBackend(redis, key=key, options=RedisPacingOptions(budget=5))


async def redis_now(redis: redis_asyncio.Redis) -> float:
    sec, usec = await redis.time()
    return float(sec) + usec / 1e6


def random_state(rng: random.Random, now: float) -> PacingState:
    """A state as a running pacer could leave it, times around ``now``."""
    limit = rng.choice([None, rng.uniform(0.5, 5000)])
    state = _random_curve(rng, now, limit)
    return _random_window(rng, now, state)


def _random_window(rng: random.Random, now: float, state: PacingState) -> PacingState:
    """A window's allowance (``allowance``) as pacers sharing it could leave it: W
    unknown or some, part of it sent or a probe past it, answers in or missing."""
    size = rng.choice([0, rng.randint(1, 50)])
    return attrs.evolve(
        state,
        win_size=size,
        win_opened=rng.choice([float("-inf"), now - rng.uniform(0, 3), now - rng.uniform(0, 0.3)]),
        win_base=max(state.successes - rng.randint(0, size + 2), 0),
        win_throttles=max(state.throttles - rng.randint(0, 3), 0),
        win_sent=rng.choice([rng.randint(0, size + 2), size]),
        win_granted=rng.choice([float("-inf"), now - rng.uniform(0, 2), now + 3600]),
        win_probed=max(state.successes - rng.randint(0, 1), 0),
        win_reset=rng.choice([float("-inf"), now + rng.uniform(-3, 0.05)]),
        **_random_stretch(rng, now),
    )


def _random_stretch(rng: random.Random, now: float) -> dict[str, float]:
    """The window's first and last successes (none, or some) and the stretch its W
    goes spread over (none, or up to more than half a window)."""
    first = rng.choice([float("inf"), now - rng.uniform(0, 3)])
    last = float("-inf") if first == float("inf") else first + rng.uniform(0, 2)
    stretch = rng.choice([0.0, rng.uniform(0.001, 2)])
    return {"win_first": first, "win_last": last, "win_stretch": stretch}


def _random_curve(rng: random.Random, now: float, limit: float | None) -> PacingState:
    return PacingState(
        limit=limit,
        searching=rng.random() < 0.4,
        origin=now + rng.uniform(-3, 0.5),
        recover=rng.choice([0.0, rng.uniform(0.1, 3)]),
        cut_at=rng.choice([float("-inf"), now - rng.uniform(0, 3)]),
        cuts=rng.randint(0, 9),
        successes=rng.randint(0, 10_000),
        successes_at_cut=rng.randint(0, 100),
        throttles=rng.randint(0, 50),
        pause_until=rng.choice([0.0, now + rng.uniform(-1, 0.3)]),
        pause_began=rng.choice([float("-inf"), now - rng.uniform(0, 2)]),
        # (streaks long enough to reach the 1 s cap of the guessed pause, too)
        streak=rng.choice([rng.randint(0, 4), rng.randint(5, 12)]),
        window_hint=rng.choice([0.0, float(rng.randint(2, 60))]),
        tat=rng.choice([float("-inf"), now + rng.uniform(-0.5, 0.2)]),
        sample_at=round((now - rng.uniform(0, 1.5)) / 0.1) * 0.1,
        hint_max=rng.choice([0.0, rng.uniform(0.0001, 0.05), rng.uniform(0.05, 2)]),
        accepted=tuple(rng.randint(0, 300) for _ in range(SAMPLE_BUCKETS)),
        offered=tuple(rng.randint(0, 300) for _ in range(SAMPLE_BUCKETS)),
        # (the quiet probe's round trip from a stream of its own: the draws above stay)
        trip=_TRIPS.choice([0.0, _TRIPS.uniform(0.0005, 0.3)]),
        walls=_TRIPS.choice([0, _TRIPS.randint(1, 3)]),
    )


_TRIPS = random.Random(43)


def assert_states_equal(lua: PacingState, py: PacingState) -> None:
    for field in attrs.fields(PacingState):
        a, b = getattr(lua, field.name), getattr(py, field.name)
        if isinstance(b, float) and a is not None:
            # To a microsecond: times are Redis's (about 1.7e9 s), where a relative
            # 1e-9 let them differ by 1.7 s (a pause a quarter second short passed).
            assert a == pytest.approx(b, rel=1e-15, abs=1e-6), field.name
        else:
            assert a == b, field.name


def _spreading(rng: random.Random, now: float, state: PacingState) -> PacingState:
    """A window whose W goes spread over a stretch, part of it sent; or one whose reset
    is due and whose W's own sends drew 429s (the next stretch is learned)."""
    size = rng.randint(2, 50)
    opened = now - rng.uniform(0, 0.5)
    first = opened + rng.uniform(0, 0.2)
    return attrs.evolve(
        state,
        limit=rng.uniform(1, 500),
        window_hint=float(rng.randint(1, 4)),
        pause_until=now - 1,
        win_size=size,
        win_sent=rng.randint(0, size - 1),
        win_opened=opened,
        win_reset=rng.choice([float("-inf"), opened, now - rng.uniform(0, 0.01)]),
        win_throttles=max(state.throttles - rng.randint(0, 5), 0),
        win_stretch=rng.choice([0.0, rng.uniform(0.01, 1.5)]),
        win_first=first,
        win_last=first + rng.uniform(0, 2.5),
    )


async def test_reserve_script_agrees_with_apply_reserve(redis: redis_asyncio.Redis) -> None:
    """The Lua reserve computes what backend.apply_reserve computes (state and slots),
    over 200 random states, counts, successes and caps: the two cannot drift apart."""
    backend = steady(redis, "agree")
    rng = random.Random(13)
    windows: set[str] = set()
    for _ in range(300):
        now = await redis_now(redis)
        before = random_state(rng, now)
        if rng.random() < 0.3:
            before = _spreading(rng, now, before)
        await redis.delete("agree")
        await redis.hset("agree", mapping=encode_state(before))
        count, successes = rng.randint(0, 40), rng.choice([0, 0, rng.randint(1, 50)])
        cap = rng.choice([None, rng.uniform(1, 3000)])
        got = await backend.in_redis._reserve(count, successes, cap)  # the script, capped
        after = decode_state(await redis.hgetall("agree"))
        want_state, want = apply_reserve(before, got.now, count, successes, cap, backend.tuning)
        assert_states_equal(after, want_state)
        assert got.count == want.count
        assert got.cuts == want.cuts
        assert (got.rate is None) == (want.rate is None)
        if want.rate is not None:
            assert got.rate == pytest.approx(want.rate, rel=1e-9)
        for name in ("first", "interval", "pause_until", "until"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-6)
        if want.rate is not None and not want.interval:  # a window's allowance
            opened = want_state.win_opened != before.win_opened
            probe = want_state.win_sent > want_state.win_size > 0
            windows.add("opened" if opened else "probe" if probe and want.count else "")
            windows.add("wait" if not want.count else "sent")
            within = want_state.win_sent < want_state.win_size
            if within and not want.count and want.first > max(got.now, want.pause_until) + 0.02:
                windows.add("spread")  # W's next send held to its time in the stretch
            if opened and want_state.win_stretch != before.win_stretch:
                windows.add("stretched")  # a stretch learned as a window opened
    # Every branch of the window's allowance was taken.
    assert {"opened", "probe", "wait", "sent", "spread", "stretched"} <= windows


def random_feedback(rng: random.Random, now: float) -> PacingFeedback:
    """Successes alone, or a 429 with no, exact, one-second or window hint."""
    throttled = rng.random() < 0.85
    return PacingFeedback(
        successes=rng.choice([0, 0, rng.randint(1, 40)]),
        throttled=throttled,
        throttled_at=rng.choice([None, now - rng.uniform(-0.2, 3)]) if throttled else None,
        retry_after=rng.choice([None, rng.uniform(0.0001, 2), 1.0, float(rng.randint(2, 90))]),
        local_rate=rng.choice([None, rng.uniform(0, 20), rng.uniform(0, 3000)]),
        spread=throttled and rng.random() < 0.2,
        latest_accepted=rng.choice([None, now - rng.uniform(-0.2, 3)]),
        walled=throttled and rng.random() < 0.3,
    )


async def test_report_script_agrees_with_apply_report(redis: redis_asyncio.Redis) -> None:
    """The Lua report computes what backend.apply_report computes (pause, window hint,
    first cut, one cut per episode with its measured rate, freeze), over 800 random
    states, feedbacks and caps: the two cannot drift apart."""
    backend = steady(redis, "agree-report")
    rng = random.Random(31)
    branches: set[tuple[bool, int]] = set()
    slow = 0  # successes judged a window's slow answers, not its probe's
    stretched = 0
    tightened = probes = ended = lowered = short = again = walls = refused = left = 0
    climbed = 0
    climbing = random.Random(37)  # (its own stream: the branches above draw as before)
    for _ in range(800):
        now = await redis_now(redis)
        before = random_state(rng, now)
        if before.limit is not None and rng.random() < 0.7:  # samples near the limit
            per_bucket = before.limit * SAMPLE_SECONDS
            accepted, offered = (per_bucket * rng.uniform(0, k) for k in (1.5, 2))
            before = attrs.evolve(
                before,
                accepted=tuple(int(accepted * rng.uniform(0.8, 1.2)) for _ in range(10)),
                offered=tuple(int(offered * rng.uniform(0.8, 1.2)) for _ in range(10)),
                origin=now - rng.uniform(0, 1.2),
                sample_at=(math.floor(now / SAMPLE_SECONDS) - rng.choice([0, 1])) * SAMPLE_SECONDS,
                window_hint=rng.choice([0.0, 0.0, 0.0, before.window_hint]),
            )
        elif rng.random() < 0.3:  # no samples yet
            before = attrs.evolve(before, accepted=(0,) * SAMPLE_BUCKETS)
        if rng.random() < 0.25:  # a pause that ends at a window's reset (``bounds_reset``)
            reset = now + rng.uniform(0.01, 2.5)
            before = attrs.evolve(
                before, pause_until=reset, win_reset=reset, pause_began=now - rng.uniform(0, 1)
            )
        feedback = random_feedback(rng, now)
        cap = rng.choice([None, None, rng.uniform(1, 3000)])
        if rng.random() < 0.1:  # a window's probe refused with a rounded second
            size = rng.randint(1, 30)
            before = attrs.evolve(
                before,
                limit=before.limit or 10.0,
                window_hint=2.0,
                win_size=size,
                win_sent=size + 1,
                win_granted=now - rng.uniform(0, 1),
                pause_until=rng.choice([0.0, now + rng.uniform(-1, 1.5)]),
            )
            sent = rng.choice([before.win_granted + rng.uniform(0, 0.2), now - 1.5])
            feedback = attrs.evolve(
                feedback, throttled=True, throttled_at=sent, retry_after=1.0, spread=False
            )
            cap = None
        if rng.random() < 0.1:  # the volley of the cut that ended the search (a bucket)
            before = attrs.evolve(
                before,
                limit=rng.uniform(100, 3000),
                searching=False,
                cuts=2,
                window_hint=0.0,
                accepted=(0,) * SAMPLE_BUCKETS,
                cut_at=now + rng.uniform(0, 1),
            )
            feedback = attrs.evolve(
                feedback,
                throttled=True,
                throttled_at=now - 0.1,
                retry_after=rng.uniform(0.002, 0.05),
                spread=False,
            )
        if rng.random() < 0.1:  # an exact hint of many slots, shorter or longer than its trip
            before = attrs.evolve(
                before,
                limit=rng.uniform(500, 3000),
                window_hint=rng.choice([0.0, 0.005]),
                cut_at=now - 1.0,
                successes_at_cut=0,
            )
            trip = rng.uniform(0.01, 0.3)
            feedback = attrs.evolve(
                feedback,
                throttled=True,
                throttled_at=now - trip,
                retry_after=trip * rng.choice([0.5, 0.9, 1.1, 2.0]) + 1e-7,
                spread=False,
            )
            cap = None
        if rng.random() < 0.1:  # a search started far above what the limiter admits
            began = now - rng.uniform(0.05, 1.2)
            before = attrs.evolve(
                before,
                limit=rng.uniform(50, 3000),
                searching=True,
                window_hint=0.0,
                recover=rng.choice([0.0, rng.uniform(0.001, 0.3)]),
                cut_at=began,
                origin=now - rng.uniform(0, 0.1),
                sample_at=math.floor(now / SAMPLE_SECONDS) * SAMPLE_SECONDS,
                accepted=tuple(rng.randint(0, 3) for _ in range(SAMPLE_BUCKETS)),
            )
            feedback = attrs.evolve(
                feedback,
                throttled=True,
                throttled_at=rng.choice([began - 0.01, began + rng.uniform(0, now - began)]),
                retry_after=rng.choice([None, 1.0]),
                spread=False,
            )
            cap = None
        if rng.random() < 0.1:  # refused since the cut, no success: an outage's 429
            # (10 ms: a bucket's next slot, which freezes the curve; 0.5 s at up to 500/s
            # is a window's length, and 1 s or none a rounded wall's: those do not)
            cut_at = now - rng.uniform(0.05, 2)
            before = attrs.evolve(
                before,
                limit=rng.uniform(5, 500),
                searching=rng.random() < 0.3,
                window_hint=0.0,
                cut_at=cut_at,
                origin=cut_at - rng.choice([0.0, 0.3]),
                successes_at_cut=before.successes,
                pause_until=rng.choice([0.0, cut_at + rng.uniform(0, now - cut_at)]),
            )
            feedback = attrs.evolve(
                feedback,
                successes=0,
                throttled=True,
                throttled_at=now - rng.uniform(0.001, 0.05),
                retry_after=rng.choice([0.01, 0.5, 1.0, None]),
                spread=False,
                walled=False,
            )
            cap = None
        if climbing.random() < 0.1:  # a one-token bucket's spread 429 far below its limit
            before = attrs.evolve(
                before,
                limit=climbing.uniform(10, 3000),
                searching=climbing.random() < 0.2,
                window_hint=0.0,
                recover=climbing.choice([0.0, 0.5, 1.5]),
                origin=now - climbing.uniform(0, 4),
            )
            feedback = attrs.evolve(feedback, throttled=True, spread=True, climb=True)
        await redis.delete("agree-report")
        await redis.hset("agree-report", mapping=encode_state(before))
        got = await backend.in_redis._report(feedback, cap)  # the script (the cap: report)
        stored = decode_state(await redis.hgetall("agree-report"))
        assert stored == got
        now = backend.in_redis._last[1] if backend.in_redis._last is not None else now
        want = apply_report(before, now, feedback, cap, backend.tuning)
        assert_states_equal(got, want)
        branches.add((before.limit is None, want.cuts - before.cuts))
        if feedback.walled:  # a wall's cut read the window's rate (``episode.wall_cut``)
            unwalled = attrs.evolve(feedback, walled=False)
            walls += want.limit != apply_report(before, now, unwalled, cap, backend.tuning).limit
        slow += want.win_probed != before.win_probed
        stretched += (want.win_first, want.win_last) != (before.win_first, before.win_last)
        tightened += want.win_reset < before.win_reset
        # a window's probe refused with a rounded second: the next reset by then at most
        probes += feedback.retry_after == 1.0 and want.win_reset == want.pause_until > now
        # a bucket's exact hint ended the search at its limit, or lowered the limit
        # an exact hint of ten slots or more, shorter than its own round trip: no window
        hint, sent = feedback.retry_after, feedback.throttled_at
        short += bool(
            feedback.throttled
            and hint is not None
            and sent is not None
            and hint != int(hint)
            and 0 < hint < now - sent
            and want.window_hint == before.window_hint
            and (before.limit or 0) * hint >= 10
        )
        climbed += feedback.climb and want.origin < before.origin  # ``curve.climb``
        resume = max(want.pause_until, now)
        ended += want.cuts > before.cuts and not want.searching and want.origin < resume - 1e-6
        # a search far above what the limiter admitted searched again from there
        again += (
            before.limit is not None
            and before.searching
            and want.searching
            and want.limit is not None
            and want.limit < before.limit
        )
        # no success since the cut: a bucket's exact hint froze the curve for the time
        # refused, not the pause alone; other hints froze it for the pause alone
        paused = max(want.pause_until, now) - max(before.pause_until, now)
        outage = (
            feedback.throttled
            and not feedback.spread
            and feedback.throttled_at is not None
            and feedback.throttled_at > before.cut_at
            and want.cuts == before.cuts
            and want.limit == before.limit
            and before.successes == before.successes_at_cut
        )
        refused += outage and want.origin - before.origin > paused + 1e-6
        left += (
            outage
            and feedback.retry_after in (1.0, None)
            and want.origin - before.origin <= paused + 1e-6
        )
        lowered += (
            want.cuts == before.cuts
            and before.limit is not None
            and (want.limit is not None and want.limit < before.limit)
        )
    # Every branch was taken: first cut, a cut, and a 429 of an old episode (or successes).
    assert {(True, 1), (False, 1), (False, 0)} <= branches
    assert slow
    assert stretched  # a success's admission widened the window's first to last
    assert tightened  # a rounded hint of the wall brought its reset forward
    assert probes
    assert climbed  # a one-token bucket's spread 429 climbed (``curve.climb``)
    assert ended
    assert lowered
    assert short
    assert again
    assert walls
    assert refused
    assert left


async def test_reports_waiting_together_go_in_one_call(redis: redis_asyncio.Redis) -> None:
    """Three reports at once: the first goes alone, the two that waited behind it go in
    one script call, applied in order as apply_report would (so a burst of 429s costs
    one round trip, not one each; none is lost)."""
    backend = steady(redis, "batch")
    rng = random.Random(7)
    for _ in range(40):
        now = await redis_now(redis)
        await redis.delete("batch")
        await redis.hset("batch", mapping=encode_state(random_state(rng, now)))
        feedbacks = [random_feedback(rng, now) for _ in range(3)]
        calls = 0
        script = backend.in_redis._report_script

        async def counted(script: Any = script, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await script(**kwargs)

        backend.in_redis._report_script = counted  # type: ignore[assignment]
        alone = await backend.report(feedbacks[0])
        first, b, c = await asyncio.gather(*(backend.report(f) for f in feedbacks))
        backend.in_redis._report_script = script
        assert calls == 3  # alone; then first alone, b and c together
        assert b == c
        assert backend.in_redis._last is not None
        now = backend.in_redis._last[1]
        want = first
        for feedback in feedbacks[1:]:
            want = apply_report(want, now, feedback, None, backend.tuning)
        assert_states_equal(c, want)
        assert c.throttles == alone.throttles + sum(f.throttled for f in feedbacks)


def test_state_survives_the_hash_round_trip() -> None:
    """Every PacingState field (None, bools, infinities, tuples) comes back as it went in."""
    rng = random.Random(5)
    for _ in range(50):
        state = random_state(rng, 1.7e9)
        assert decode_state(encode_state(state)) == state


async def test_one_cut_per_episode_across_processes(redis: redis_asyncio.Redis) -> None:
    """Two processes report 429s of one episode (admitted before the cut, no success
    since): the limit is cut once.  A 429 of a later episode cuts again."""
    a = steady(redis, "episode")
    b = steady(redis, "episode")
    now = await redis_now(redis)
    paced = PacingState(limit=100.0, searching=False, origin=now - 2, cut_at=now - 2, cuts=1)
    await redis.hset("episode", mapping=encode_state(paced))
    slot = await a.reserve(1, successes=20)
    sent_at = slot.first
    first = await a.report(PacingFeedback(throttled=True, throttled_at=sent_at))
    assert first.cuts == 2
    # b's 429s are the same burst: admitted before a's cut, or no success since it.
    second = await b.report(PacingFeedback(throttled=True, throttled_at=sent_at))
    late = await b.report(PacingFeedback(throttled=True, throttled_at=first.cut_at + 0.001))
    assert (second.cuts, late.cuts) == (2, 2)
    assert late.limit == first.limit
    # A success since the cut, then a 429 for a request admitted after it: a new episode.
    after_cut = await b.reserve(1, successes=5)
    third = await b.report(PacingFeedback(throttled=True, throttled_at=after_cut.first + 1))
    assert third.cuts == 3
    assert third.throttles == 4


async def test_slots_another_process_holds_from_before_the_cut_do_not_cut_again(
    redis: redis_asyncio.Redis,
) -> None:
    """Process a holds slots reserved at the old rate; b's 429 cuts.  a's 429s for its
    held slots (admitted after the cut's 1 ms pause, before a heard of the cut) are that
    episode's: one cut, the limit b's cut set.  A slot reserved after the cut cuts again."""
    # Slots 0.1 s apart, reserved a second ahead: the held ones end long after b's
    # 1 ms pause however slow a loaded machine is between these calls.
    wide = PacingTuning(horizon=1.0)
    a, b = (
        RedisPacingBackend(redis, key="held", options=RedisPacingOptions(budget=5), tuning=wide)
        for _ in range(2)
    )
    now = await redis_now(redis)
    state = PacingState(
        limit=10.0, searching=False, origin=now - 0.2, cut_at=now - 0.2, cuts=1, successes=50
    )
    await redis.hset("held", mapping=encode_state(state))
    held = await a.reserve(5, successes=10)
    assert held.count >= 2
    last_held = held.first + (held.count - 1) * held.interval
    mine = await b.reserve(1)
    first = await b.report(
        PacingFeedback(successes=5, throttled=True, throttled_at=mine.first, retry_after=0.001)
    )
    assert first.cuts == 2
    assert first.cut_at >= last_held > first.pause_until
    again = await a.report(
        PacingFeedback(successes=5, throttled=True, throttled_at=last_held, retry_after=0.001)
    )
    assert (again.cuts, again.limit) == (2, first.limit)
    fresh = await a.reserve(2, successes=5)
    assert fresh.cuts == 2
    assert fresh.first >= first.cut_at  # the new slots follow the held ones
    later = await a.report(
        PacingFeedback(throttled=True, throttled_at=fresh.first + fresh.interval, retry_after=0.001)
    )
    assert later.cuts == 3


async def test_concurrent_reports_from_many_processes_are_all_counted(
    redis: redis_asyncio.Redis,
) -> None:
    """Eight backends (as eight processes) report 25 429s each at once: the optimistic
    transaction loses none and cuts once for the burst."""
    backends = [steady(redis, "burst") for _ in range(8)]
    now = await redis_now(redis)
    await redis.hset(
        "burst",
        mapping=encode_state(PacingState(limit=50.0, searching=False, origin=now, cut_at=now)),
    )
    feedback = PacingFeedback(throttled=True, throttled_at=now - 1)
    await asyncio.gather(*(b.report(feedback) for b in backends for _ in range(25)))
    state = await backends[0].load()
    assert state.throttles == 200
    assert state.cuts == 0  # admitted before the cut: the same episode
    assert all(b.shared for b in backends)


async def test_exact_hint_pause_reaches_the_other_process(redis: redis_asyncio.Redis) -> None:
    """A 0.4 s hint reported by one process: the other's next slot starts after it."""
    a = steady(redis, "pause")
    b = steady(redis, "pause")
    slot = await a.reserve(1)
    state = await a.report(
        PacingFeedback(throttled=True, throttled_at=slot.first, retry_after=0.4, local_rate=50)
    )
    assert state.pause_until == pytest.approx(slot.now + 0.4, abs=0.05)
    other = await b.reserve(3)
    assert other.first >= state.pause_until
    assert other.pause_until == state.pause_until


async def test_script_reloads_after_the_server_forgets_it(redis: redis_asyncio.Redis) -> None:
    """Called by SHA; after SCRIPT FLUSH (a restarted server) it is loaded again."""
    backend = steady(redis, "flush")
    await backend.reserve(1)
    await redis.script_flush()
    assert (await backend.reserve(2)).count == 2
    assert backend.shared


async def test_keys_are_hashed_per_token_and_expire(
    redis_server: RedisServer, redis: redis_asyncio.Redis
) -> None:
    """Each (API root, token) has its own key, which names neither and expires."""
    root = "https://app.opentrain.ai/api/public/v1"
    keys = {pacing_key(root, "tok-a"), pacing_key(root, "tok-b"), pacing_key(root + "x", "tok-a")}
    assert len(keys) == 3
    assert all("tok" not in k and "opentrain.ai" not in k for k in keys)
    clients = [
        OpenTrainClient(token, "http://127.0.0.1:9", pacing_url=redis_server.url)
        for token in ("tok-a", "tok-b")
    ]
    for client in clients:
        await client.pacer.backend.reserve(1)
        await client.close()
    stored = await redis.keys("opentrain:pacing:*")
    assert len(stored) == 2  # one hash per token
    for key in stored:
        assert 0 < await redis.pttl(key) <= 600_000


def test_url_options_and_errors() -> None:
    """Our options come out of the query, the rest stays for redis-py; bad values are
    named; errors never repeat the password."""
    url, options = parse_pacing_url(
        "rediss://:pw@cache:6380/2?budget=0.1&fail_closed=true&retry_every=3&ssl_cert_reqs=none"
    )
    assert url == "rediss://:pw@cache:6380/2?ssl_cert_reqs=none"
    assert (options.budget, options.fail_closed, options.retry_every) == (0.1, True, 3.0)
    for bad, field in (
        ("redis://:topsecret@h:6379/0?budget=0", "budget"),
        ("redis://:topsecret@h:6379/0?fail_closed=maybe", "fail_closed"),
        ("http://:topsecret@h:6379/0", "scheme"),
        ("redis://:topsecret@h:notaport/0", "valid URL"),
    ):
        with pytest.raises(ConfigurationError, match=field) as info:
            parse_pacing_url(bad)
        assert "topsecret" not in str(info.value)
        error = info.value
        assert error.__cause__ is None
        assert error.__context__ is None or error.__suppress_context__


def test_redacted_urls() -> None:
    """Passwords (with or without a user name) become *** in what is shown."""
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://pw@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://h:1/0?password=pw") == "redis://h:1/0"


@pytest.mark.process
async def test_password_never_leaks(
    tmp_path: object, caplog: pytest.LogCaptureFixture, redis_server: RedisServer
) -> None:
    """Wrong password, then the server gone: reprs, the warning and stats carry no
    password, and nothing raised chains a Redis error."""
    secret = "s3cr3t-redis-pw"
    url = f"redis://:{secret}@127.0.0.1:{redis_server.port}/0"  # the server has no password
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    redis_server.kill()
    backend = backend_from_url(url)
    backend.key = "k"
    reservation = await backend.reserve(1)  # fails open
    assert reservation.count == 1
    assert not backend.shared
    text = " ".join([repr(backend), *(r.getMessage() for r in caplog.records)])
    assert secret not in text
    assert "redis://:***@127.0.0.1" in text
    client = OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", pacing_url=url)
    assert secret not in repr(client) + repr(client.pacer.backend) + client.pacer.describe()
    await client.close()
    await backend.aclose()


def test_client_pacing_options_conflict_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """$OT_PACING_URL is used unless pacing_url says otherwise ("" turns it off); a
    pacer or backend of one's own and a pacing_url together are refused."""
    env = {"OT_PACING_URL": "redis://127.0.0.1:1/0"}
    client = OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", env=env)
    assert isinstance(client.pacer.backend, RedisPacingBackend)
    assert client.pacer.backend.key == pacing_key(client.api_root, "ot_pat_tok")
    off = OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", env=env, pacing_url="")
    assert not isinstance(off.pacer.backend, RedisPacingBackend)
    with pytest.raises(ConfigurationError, match="not both"):
        OpenTrainClient(
            "tok",
            "http://127.0.0.1:9",
            pacing_url="redis://127.0.0.1:1/0",
            pacer=off.pacer,
        )


@pytest.mark.process
async def test_losing_redis_while_paced_keeps_pacing_locally(
    redis_server: RedisServer, redis: redis_asyncio.Redis
) -> None:
    """Redis dies while the shared limit is known: the local fallback starts paced at
    this process's recent share (not unpaced, which would meet the server with a
    burst), and says so once."""
    backend = steady(redis, "share")
    now = await redis_now(redis)
    await redis.hset(
        "share",
        mapping=encode_state(PacingState(limit=200.0, searching=False, origin=now, cut_at=now)),
    )
    granted = 0
    for _ in range(10):
        granted += (await backend.reserve(4)).count
    redis_server.kill()
    fallback = await backend.reserve(4)
    assert not backend.shared
    assert backend.fallbacks == 1
    assert fallback.rate is not None
    local = await backend.load()
    assert local.limit == pytest.approx(granted)
    # Nothing learned yet when Redis goes: the fallback starts unpaced (slow start).
    fresh = steady(redis, "fresh")
    assert (await fresh.reserve(1)).rate is None
    assert (await fresh.load()).limit is None


def test_without_the_redis_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No redis package: pacing_url is a ConfigurationError naming the extra."""
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"opentrain-async\[redis\]"):
        OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", pacing_url="redis://127.0.0.1:1/0")


async def test_unpaced_requests_admitted_before_hearing_of_a_pause_are_its_burst(
    redis: redis_asyncio.Redis,
) -> None:
    """Before the limit is known, a process that had not heard of another's 429 yet
    admitted on old knowledge: its 429 does not count as a new burst (the short pause
    does not double).  Once it has heard (or is paced), a later 429 does."""
    a = steady(redis, "burst-rule")
    b = steady(redis, "burst-rule")
    heard = await b.reserve(1)  # b checks in, unpaced
    assert heard.rate is None
    slot = await a.reserve(1)
    first = await a.report(
        PacingFeedback(throttled=True, throttled_at=slot.first, retry_after=1.0, local_rate=50)
    )
    assert first.streak == 1
    late = first.pause_began + 0.001  # b admitted after the pause began, unaware of it
    same = await b.report(PacingFeedback(throttled=True, throttled_at=late, retry_after=1.0))
    assert same.streak == 1
    # Not doubled (0.1 s from now would end at least 0.05 s later than the first).
    assert same.pause_until - first.pause_until < 0.04
    again = await b.reserve(1)  # now b has heard (and is paced)
    new = await b.report(
        PacingFeedback(throttled=True, throttled_at=again.first + 0.001, retry_after=1.0)
    )
    assert new.streak == 2


async def test_first_estimate_counts_every_process_successes(
    redis: redis_asyncio.Redis,
) -> None:
    """The first 429 may reach a process with no success of its own yet: the search
    starts from what every process got through (30 successes reported by the other),
    not from this process's nothing; and never below one request per doubling, or
    the processes' first slots at a crawl hold all of them back while the search climbs
    untested (seen: a first estimate of 0.7/s, 1.8 s of nothing, then a burst at
    400,000/s and 4,101 429s)."""
    a = steady(redis, "first")
    b = steady(redis, "first")
    await b.reserve(1, successes=30)
    slot = await a.reserve(1)
    state = await a.report(
        PacingFeedback(throttled=True, throttled_at=slot.first, retry_after=0.01, local_rate=0.0)
    )
    assert state.limit is not None
    assert 25 <= state.limit <= 300
    # Nobody got anything through: one request per doubling.
    c = steady(redis, "first-empty")
    slot = await c.reserve(1)
    floor = await c.report(
        PacingFeedback(throttled=True, throttled_at=slot.first, retry_after=0.01, local_rate=0.0)
    )
    assert floor.limit == 1 / c.tuning.doubling
    # This process's own rate when it is the best evidence (not multiplied by a count
    # of processes that may not have sent anything yet: that overshot 4x at start).
    d = steady(redis, "first-own")
    slot = await d.reserve(1)
    own = await d.report(
        PacingFeedback(throttled=True, throttled_at=slot.first, retry_after=0.01, local_rate=70)
    )
    assert own.limit == pytest.approx(70)


async def test_a_shared_backend_checks_in_often_before_any_limit_is_known(
    redis: redis_asyncio.Redis,
) -> None:
    """Until paced, every request another process sends into a limit it already found
    costs a 429: the Redis backend's default tuning checks in every few milliseconds,
    the in-memory one (nobody to hear from) every 50 ms."""
    backend = RedisPacingBackend(redis, key="ot:test:sync")
    assert backend.tuning.sync_every == SHARED_SYNC_EVERY < PacingTuning().sync_every
    assert Pacer(backend=backend).tuning.sync_every == SHARED_SYNC_EVERY
