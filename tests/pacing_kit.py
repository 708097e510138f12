"""What pacing tests build again and again: a window's state as a pacer learns it, a
pacer paced on it, the Lua script checked against ``allowance`` on it, an in-memory
state a pacer reaches as if over a network, a job of senders driven against a limiter
in virtual time; and a benchmark command's output."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import Pacer
from opentrain_async._pacing.backend import (
    InMemoryPacingBackend,
    PacingBackend,
    Reservation,
    apply_report,
    apply_reserve,
)
from opentrain_async._pacing.redis_backend import decode_state, encode_state
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing._limits import _ScheduleLimiter

from .step_clock import Clock
from .test_pacing_redis import assert_states_equal, steady


def known_window(w: int, window: float, reset: float, **changes: Any) -> PacingState:
    """A window of ``w`` per ``window`` seconds, learned as a pacer learns it (one cut a
    window before ``reset``), its next reset at ``reset``; ``changes`` on top."""
    state = PacingState(
        limit=w / window,
        searching=False,
        origin=reset - window,
        cut_at=reset - window,
        cuts=2,
        successes=w,
        window_hint=window,
        pause_until=reset,
        win_reset=reset,
    )
    return attrs.evolve(state, **changes)


def opened_window(w: int, window: float, opened: float, sent: int, **changes: Any) -> PacingState:
    """``known_window`` whose window opened at its reset ``opened``, W = ``w`` granted
    then and ``sent`` of it gone; ``changes`` on top."""
    opening = {"win_size": w, "win_opened": opened, "win_sent": sent, "win_granted": opened}
    return known_window(w, window, opened, **{**opening, **changes})


def paced(clock: Clock, backend: PacingBackend) -> Pacer:
    """A pacer on ``clock`` in a window's mode, as its first reservation of a known
    window makes it (tests drive it call by call from there)."""
    pacer = Pacer(backend=backend, clock=clock, sleep=clock.sleep)
    pacer._become_paced()
    return pacer


def paced_at_reset(
    clock: Clock, w: int, hint: float, *, limit: float, cut_at: float, **changes: Any
) -> tuple[InMemoryPacingBackend, Pacer]:
    """A pacer in a window's mode, ``w`` per ``hint`` known (its curve at ``limit``,
    last cut at ``cut_at``), the reset now: its first reservation hands out W."""
    now = clock.now
    state = PacingState(
        limit=limit,
        searching=False,
        origin=now - 10.0,
        cut_at=cut_at,
        cuts=2,
        window_hint=hint,
        win_size=w,
        pause_until=now,
        win_reset=now,
        **changes,
    )
    backend = InMemoryPacingBackend(clock=clock, state=state)
    return backend, paced(clock, backend)


async def probe_after_w(clock: Clock, pacer: Pacer, w: int, at: float) -> float:
    """``w`` slots taken at once and each send accepted; then, at ``at``, the probe past
    them: its slot."""
    sent = [pacer.try_acquire() for _ in range(w)]
    assert None not in sent
    for slot in sent:
        pacer.on_success(slot)  # type: ignore[arg-type]
    await pacer.flushed()
    clock.now = at
    probe = pacer.try_acquire()
    assert probe is not None
    return probe


async def lua_reserve_agrees(
    redis: redis_asyncio.Redis, key: str, before: PacingState, count: int
) -> tuple[PacingState, Reservation, PacingState, Reservation]:
    """``before`` written at ``key``; ``count`` reserved by the Lua script at Redis's
    now and by ``apply_reserve`` at that now must leave the same state and grant the
    same slots.  Returns Lua's state and grant, then Python's."""
    backend = steady(redis, key)
    await redis.delete(key)
    await redis.hset(key, mapping=encode_state(before))
    got = await backend.in_redis._reserve(count, 0, None)
    after = decode_state(await redis.hgetall(key))
    want_state, want = apply_reserve(before, got.now, count, 0, None, backend.tuning)
    assert_states_equal(after, want_state)
    assert (got.count, got.interval) == (want.count, want.interval)
    assert math.isclose(got.first, want.first, abs_tol=1e-6)
    return after, got, want_state, want


async def lua_report_agrees(
    redis: redis_asyncio.Redis, key: str, before: PacingState, feedback: PacingFeedback
) -> tuple[PacingState, PacingState]:
    """``before`` written at ``key``; ``feedback`` reported by the Lua script and by
    ``apply_report`` at Redis's now of it must leave the same state: Lua's, Python's."""
    backend = steady(redis, key)
    await redis.delete(key)
    await redis.hset(key, mapping=encode_state(before))
    got = await backend.in_redis._report(feedback, None)
    assert backend.in_redis._last is not None
    want = apply_report(before, backend.in_redis._last[1], feedback, None, backend.tuning)
    assert_states_equal(got, want)
    return got, want


def command_output(
    main: Callable[[list[str]], object], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """What a benchmark command prints.  The command quiets the SDK's warnings: the
    logger's level is put back after it, for later tests read them."""
    logger = logging.getLogger("opentrain_async")
    level = logger.level
    try:
        main(argv)
    finally:
        logger.setLevel(level)
    return capsys.readouterr().out


class Switch(InMemoryPacingBackend):
    """An in-memory shared store whose reservations and reports fail while ``down``."""

    down = False

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        if self.down:
            raise ConnectionError("down")
        return await super().reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        if self.down:
            raise ConnectionError("down")
        return await super().report(feedback, cap=cap)


class Shared:
    """An in-memory state reached as if over a network (not an ``InMemoryPacingBackend``:
    the pacer sees only what reservations and its own reports return, as with Redis)."""

    def __init__(self, inner: InMemoryPacingBackend) -> None:
        self.inner = inner
        self.tuning = inner.tuning

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        return await self.inner.reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        return await self.inner.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        return await self.inner.load()

    async def aclose(self) -> None:
        """Nothing opened."""

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """Nothing to name."""


@attrs.define
class Trace:
    """What ``drive`` saw, each time from the job's start."""

    admitted: list[float] = attrs.Factory(list)
    """Each accepted request's admission by its pacer (``sent_at``), in answer order."""
    arrived: list[float] = attrs.Factory(list)
    """Each accepted request's arrival at the limiter, in answer order."""
    refused: list[float] = attrs.Factory(list)
    """When each 429 was answered."""
    hints: list[float] = attrs.Factory(list)
    """Each 429's hint, as told to the pacer."""
    sends: collections.Counter[int] = attrs.Factory(collections.Counter)
    """Requests arriving at the limiter, per virtual second."""


def rounded_up(now: float, wait: float) -> float:
    """A ``drive`` hint: the wait rounded up to whole seconds (at least 1), as most
    servers say it."""
    return float(max(math.ceil(wait), 1))


async def drive(
    pacers: Sequence[Pacer],
    limiter: _ScheduleLimiter,
    n: int,
    *,
    workers: int,
    latency: float,
    hint: Callable[[float, float], float],
    paced_waits: bool = True,
) -> Trace:
    """``n`` requests by ``workers`` senders (sender i on ``pacers[i % len(pacers)]``)
    against ``limiter``, ``latency`` seconds each way, in the running loop (virtual
    time: its clock and sleeps).  A refusal is told to the pacer with ``hint(arrival,
    wait)`` and its request waits that hint, unless ``paced_waits`` and the pacer says
    it waits it (``Pacer.paces_reset``, as a bulk send's retry asks); then every pacer
    is flushed."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    left = n
    trace = Trace()

    async def worker(pacer: Pacer) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            while True:
                sent_at = pacer.try_acquire()
                if sent_at is None:
                    sent_at = await pacer.acquire()
                await asyncio.sleep(latency)
                now = loop.time() - start
                wait = limiter.acquire(now)
                trace.sends[int(now)] += 1
                await asyncio.sleep(latency)
                if wait is None:
                    pacer.on_success(sent_at)
                    trace.admitted.append(sent_at - start)
                    trace.arrived.append(now)
                    break
                trace.refused.append(loop.time() - start)
                told = hint(now, wait)
                trace.hints.append(told)
                await pacer.on_throttle(sent_at, told)
                if not (paced_waits and pacer.paces_reset(told)):
                    await asyncio.sleep(told)

    await asyncio.gather(*(worker(pacers[i % len(pacers)]) for i in range(workers)))
    await asyncio.gather(*(pacer.flushed() for pacer in pacers))
    return trace
