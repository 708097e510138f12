"""Places in line: a reservation that cannot be granted within the horizon hands out the
next slot (the schedule moves on for it), so a process sleeps until its place and
sends instead of asking again with every other waiting process.

What must hold besides: a place is never further ahead than ``line_ahead`` (a line
handed out at today's rate would hold back a rising one); nobody holds a
place while the limit is in doubt (a pause, a 429 with no success since), since a
place is sent without asking again; a place whose holder dies costs one slot, not the
line; places handed out before a cut are that episode's (their 429s do not cut again);
and the Lua script grants what the in-memory backend grants.  Only a backend reached
over a round trip hands out places (``SHARED_LINE_AHEAD``): in-process, asking again
is free.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend, apply_reserve
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async._pacing.redis_options import RedisPacingOptions
from opentrain_async._pacing.redis_state import decode_state, encode_state
from opentrain_async._pacing.schedule import line_ahead
from opentrain_async._pacing.state import (
    SHARED_LINE_AHEAD,
    PacingFeedback,
    PacingState,
    PacingTuning,
)
from opentrain_async.testing import FakeTime

TUNING = PacingTuning(line_ahead=SHARED_LINE_AHEAD)  # a shared backend's
RATE = 125.0  # 8 ms apart: a horizon (20 ms) holds three slots


def _paced(now: float, **changes: object) -> PacingState:
    """Past its search, at ``RATE`` on the curve's plateau, the line at ``now``."""
    fields: dict[str, object] = {
        "limit": RATE,
        "searching": False,
        "origin": now - 0.3,
        "recover": 0.3,
        "cut_at": now - 0.3,
        "cuts": 2,
        "tat": now,
    }
    fields.update(changes)
    return PacingState(**fields)  # type: ignore[arg-type]


def test_a_reservation_beyond_the_horizon_holds_the_next_place() -> None:
    now = 100.0
    state = _paced(now, tat=now + 0.05)  # others hold the slots of the next 50 ms
    state, got = apply_reserve(state, now, 5, 0, None, TUNING)
    # A horizon's slots from its place (what asking again then would get), not the
    # five asked for: the line stays short.
    assert got.count == 3
    assert got.first == pytest.approx(now + 0.05)
    assert state.tat == pytest.approx(now + 0.05 + 3 * got.interval)  # the line moved on
    state, after = apply_reserve(state, now, 1, 0, None, TUNING)
    assert after.first == pytest.approx(got.first + 3 * got.interval)  # the next asker's


def test_in_process_nobody_holds_a_place() -> None:
    """A pacer alone on its in-memory backend asks again a horizon before its slot, as
    before places: asking costs nothing there, and it learns of a cut at the latest."""
    now = 100.0
    state = _paced(now, tat=now + 0.05)
    _, got = apply_reserve(state, now, 1, 0, None, PacingTuning())
    assert got.count == 0
    assert Pacer()._ask_again(got.first, now) == pytest.approx(got.first - TUNING.horizon)


def test_no_place_further_than_line_ahead() -> None:
    now = 100.0
    ahead = line_ahead(TUNING)
    state = _paced(now, tat=now + ahead + 0.001)
    after, got = apply_reserve(state, now, 1, 0, None, TUNING)
    assert got.count == 0
    assert after.tat == state.tat  # nothing held
    # The pacer asks again when the place comes within reach, not a horizon before it.
    time = FakeTime(start=now)
    pacer = Pacer(tuning=TUNING, clock=time.clock, sleep=time.sleep)
    assert pacer._ask_again(got.first, now) == pytest.approx(got.first - ahead)
    assert pacer._ask_again(now + 0.03, now) == pytest.approx(now + 0.03 - TUNING.horizon)


@pytest.mark.parametrize(
    "doubt",
    [
        {"pause_until": 100.01},  # a pause not over yet (its end within the horizon)
        {"streak": 1},  # a 429 extended a pause and no success came since
    ],
)
def test_nobody_holds_a_place_while_the_limit_is_in_doubt(doubt: dict[str, float]) -> None:
    now = 100.0
    state = _paced(now, tat=now + 0.05, **doubt)
    _, got = apply_reserve(state, now, 1, 0, None, TUNING)
    assert got.count == 0
    # A success reported with the reservation ends the doubt of a 429 (not a pause's).
    if "streak" in doubt:
        _, got = apply_reserve(state, now, 1, 1, None, TUNING)
        assert got.count == 1


class _Shared:
    """One process's view of a shared in-memory state, with a round trip per call."""

    def __init__(self, shared: InMemoryPacingBackend, time: FakeTime, calls: list[int]) -> None:
        self.shared, self.tuning, self.time, self.calls = shared, shared.tuning, time, calls

    async def reserve(self, count: int, *, successes: int = 0, cap: float | None = None):  # type: ignore[no-untyped-def]
        await self.time.sleep(0.001)
        got = await self.shared.reserve(count, successes=successes, cap=cap)
        self.calls.append(got.count)
        await self.time.sleep(0.001)
        return got

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        return await self.shared.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        return await self.shared.load()

    async def aclose(self) -> None:
        """Nothing opened."""

    def attach(self, key: str, on_fallback: object) -> None:
        """One state whatever the key."""


async def test_a_place_whose_holder_dies_costs_one_slot_not_the_line() -> None:
    time = FakeTime(start=100.0)
    shared = InMemoryPacingBackend(TUNING, clock=time.clock, state=_paced(100.0, tat=100.0))
    calls: list[int] = []
    pacers = [
        Pacer(backend=_Shared(shared, time, calls), clock=time.clock, sleep=time.sleep)
        for _ in range(8)
    ]
    for pacer in pacers:  # (each learns it is paced, as a process does at its first call)
        pacer._become_paced()
    waiting = [asyncio.ensure_future(pacer.acquire()) for pacer in pacers]
    await time.sleep(0.005)  # every process holds a place in line by now
    assert calls == [1] * 8  # one call each, each granted its place
    doomed = waiting[3]
    doomed.cancel()  # its holder dies before its place comes
    starts = await asyncio.gather(*(w for w in waiting if w is not doomed))
    starts = sorted(starts)
    gaps = [b - a for a, b in pairwise(starts)]
    # One slot unused where the dead place was; the line went on after it.
    assert max(gaps) == pytest.approx(2 / RATE, abs=1e-4)
    assert sorted(gaps)[-2] == pytest.approx(1 / RATE, abs=1e-4)
    assert starts[-1] - starts[0] == pytest.approx(7 / RATE, abs=1e-4)


def test_places_handed_out_before_a_cut_are_its_episode() -> None:
    """A cut while others hold places at the old rate: their 429s do not cut again."""
    now = 100.0
    state = _paced(now, successes=50, successes_at_cut=10)
    places = []
    for _ in range(8):  # the horizon's slots, then places in line
        state, got = apply_reserve(state, now, 1, 0, None, TUNING)
        places.append(got.first)
    assert max(places) > now + TUNING.horizon  # some are places beyond the horizon
    backend = InMemoryPacingBackend(TUNING, clock=lambda: now + 0.002, state=state)
    cut = backend.report_now(PacingFeedback(throttled=True, throttled_at=now, retry_after=0.005))
    assert cut.cuts == state.cuts + 1
    for at in places[1:]:  # each holder's 429 for its place, later
        after = backend.report_now(
            PacingFeedback(throttled=True, throttled_at=at, retry_after=0.005)
        )
        assert after.cuts == cut.cuts
        assert after.limit == cut.limit


async def test_the_script_hands_out_the_places_apply_reserve_does(
    redis: redis_asyncio.Redis,
) -> None:
    backend = RedisPacingBackend(redis, key="line", options=RedisPacingOptions(budget=5))
    tuning = backend.tuning
    ahead = line_ahead(tuning)
    cases = {
        "place": {"tat": 0.08},
        "beyond": {"tat": ahead + 0.05},
        "paused": {"tat": 0.08, "pause_until": 0.07},
        "streak": {"tat": 0.08, "streak": 2},
        "horizon": {"tat": 0.0},
    }
    seen = {}
    for name, case in cases.items():
        sec, usec = await redis.time()  # (times from Redis's now, just before the call)
        now = float(sec) + usec / 1e6
        ahead_of_now = {k: now + v for k, v in case.items() if k != "streak"}
        before = _paced(now, streak=case.get("streak", 0), **ahead_of_now)
        await redis.delete("line")
        await redis.hset("line", mapping=encode_state(before))
        got = await backend.in_redis._reserve(5, 0, None)
        after = decode_state(await redis.hgetall("line"))
        want_state, want = apply_reserve(before, got.now, 5, 0, None, tuning)
        assert got.count == want.count, name
        assert got.first == pytest.approx(want.first, abs=1e-6), name
        assert after.tat == pytest.approx(want_state.tat, abs=1e-6), name
        seen[name] = got.count
    assert seen["place"] == 3
    assert seen["beyond"] == seen["paused"] == seen["streak"] == 0
    assert seen["horizon"] > 1
