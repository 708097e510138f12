"""Deterministic pacing simulator: the client's Pacer against the fake server's limiters.

Runs on an event loop whose clock jumps to the next timer instead of sleeping, so a
minute-long rate-limited job simulates in about a second, identically for one seed.
Workers mirror the client pipeline: pacer -> semaphore -> (CPU cost, network latency,
limiter) -> on_success / on_throttle + the RetryPolicy's wait, and report each outcome
to a consumer.  Life's noise comes from the seed: timers fire late by a random amount
(an event loop busy with other callbacks), latency varies, and some regimes stall the
whole loop for a moment (a GC pause, an in-process server) or block the consumer.

Each regime runs ``--runs`` times with different seeds and prints the spread: median and
slowest ratio to the strict ideal (``Regime.ideal``), slowest/median, and the worst 429
share.  Used to tune
``opentrain_async._pacing``; the real benchmark (``python -m benchmarks``) confirms.

    python -m benchmarks.pacing_sim [--runs 12] [--only NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import selectors
import statistics
from collections.abc import Callable
from typing import Any

import attrs

from opentrain_async import Pacer, RateLimitError, RetryPolicy
from opentrain_async._pacing.backend import InMemoryPacingBackend, Reservation
from opentrain_async._pacing.state import (
    SHARED_INITIAL_WINDOW,
    SHARED_SYNC_EVERY,
    PacingFeedback,
    PacingState,
    PacingTuning,
)
from opentrain_async.testing import FixedWindow, TokenBucket

__all__ = ["REGIMES", "Regime", "SimResult", "VirtualTimeLoop", "simulate"]

Policy = TokenBucket | FixedWindow


class _NullSelector(selectors.BaseSelector):
    """A selector with nothing to wait for: select() just advances virtual time."""

    def __init__(self) -> None:
        self.loop: VirtualTimeLoop | None = None
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, 0, events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        assert self.loop is not None
        if timeout is None:
            raise RuntimeError("simulation deadlock: nothing scheduled")
        self.loop.virtual_now += max(0.0, timeout)
        return []

    def get_map(self) -> Any:
        return self._map


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose time() is virtual and advances only when nothing is ready."""

    def __init__(self) -> None:
        selector = _NullSelector()
        super().__init__(selector)
        selector.loop = self
        self.virtual_now = 0.0

    def time(self) -> float:
        return self.virtual_now


@attrs.frozen
class Regime:
    """One situation a user meets: the server's limit over time and the client's life."""

    name: str
    n: int
    limits: tuple[tuple[float, Policy], ...]
    """(from second, policy): the limit changes at these times (the first at 0)."""
    latency: float = 0.0008
    """Round trip to the server, seconds (varies by +-25% per request)."""
    consumer_pause: tuple[float, float] | None = None
    """(at second, seconds): the consumer of outcomes blocks once (all workers wait)."""
    stalls: tuple[tuple[float, float], ...] = ()
    """(at second, seconds): the whole event loop is blocked (timers and I/O late)."""
    timer_lateness: float = 0.0003
    """Mean seconds a timer fires late (exponential): an event loop busy elsewhere."""
    processes: int = 1
    """Pacers sharing one backend (as processes share Redis), ``PER_PROCESS`` workers
    each; 1: one pacer with ``concurrency`` workers and its own in-memory backend."""

    def ideal(self) -> float:
        """The strict ideal (``benchmarks.family.strict_ideal``: the limiter's earliest
        admission of the n-th message plus a round trip, a moving limit integrated),
        plus any consumer pause or stall.  (Until issue 19: n/rate.)"""
        from opentrain_async.testing import LimitSchedule

        from .family import strict_ideal

        extra = self.consumer_pause[1] if self.consumer_pause else 0.0
        extra += sum(s for _, s in self.stalls)
        in_flight = 64 if self.processes == 1 else PER_PROCESS * self.processes
        schedule = LimitSchedule(tuple((float(at), p) for at, p in self.limits))
        return strict_ideal(schedule, self.n, self.latency, in_flight) + extra


PER_PROCESS = 16
"""Workers (requests in flight) per process in the shared regimes, as in
``benchmarks.processes``."""
BACKEND_LATENCY = 0.0004
"""Round trip to a shared backend (a Redis on the same host) in the shared regimes."""


class _SharedBackend:
    """One in-memory state reached over a round trip, as processes reach Redis: each
    call is atomic at the far end, its answer arrives half a round trip later."""

    def __init__(self, tuning: PacingTuning, clock: Callable[[], float]) -> None:
        self.tuning = tuning
        self._inner = InMemoryPacingBackend(tuning, clock=clock)

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        await asyncio.sleep(BACKEND_LATENCY / 2)
        reservation = await self._inner.reserve(count, successes=successes, cap=cap)
        await asyncio.sleep(BACKEND_LATENCY / 2)
        return reservation

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        await asyncio.sleep(BACKEND_LATENCY / 2)
        state = await self._inner.report(feedback, cap=cap)
        await asyncio.sleep(BACKEND_LATENCY / 2)
        return state

    async def load(self) -> PacingState:
        return await self._inner.load()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        self._inner.attach(key, on_fallback)


def _bucket(rate: float, burst: int, integer: bool = False) -> TokenBucket:
    return TokenBucket(rate=rate, burst=burst, integer_hints=integer)


REGIMES: dict[str, Regime] = {
    r.name: r
    for r in (
        Regime("bucket 500/s exact hints", 1500, ((0, _bucket(500, 10)),)),
        Regime("bucket 200/s integer hints", 1000, ((0, _bucket(200, 10, True)),)),
        Regime("fixed window 100/1s", 500, ((0, FixedWindow(limit=100, window=1.0)),)),
        Regime(
            "fixed window 100/1s, loop stalls",
            500,
            ((0, FixedWindow(limit=100, window=1.0)),),
            stalls=((0.005, 0.5), (2.5, 0.3)),
        ),
        Regime("bucket 1000/s burst 20", 5000, ((0, _bucket(1000, 20)),)),
        Regime("bucket 4000/s burst 40", 12000, ((0, _bucket(4000, 40)),)),
        Regime(
            "slow window 30/3s whole-second hints",
            300,
            ((0, FixedWindow(limit=30, window=3.0, integer_hints=True)),),
        ),
        Regime(
            "window 120/60s whole-second hints",
            480,
            ((0, FixedWindow(limit=120, window=60.0, integer_hints=True)),),
        ),
        Regime(
            "limit drops 1000/s -> 250/s at 2 s",
            3000,
            ((0, _bucket(1000, 20)), (2.0, _bucket(250, 20))),
        ),
        Regime(
            "limit rises 250/s -> 1000/s at 2 s",
            4000,
            ((0, _bucket(250, 20)), (2.0, _bucket(1000, 20))),
        ),
        Regime("latency 40 ms, bucket 500/s", 2500, ((0, _bucket(500, 10)),), latency=0.04),
        Regime(
            "consumer pause 1 s, bucket 1000/s",
            5000,
            ((0, _bucket(1000, 20)),),
            consumer_pause=(2.0, 1.0),
        ),
        Regime(
            "loop stalls, bucket 1000/s",
            5000,
            ((0, _bucket(1000, 20)),),
            stalls=((1.5, 0.3), (3.0, 0.5)),
        ),
        *(
            Regime(
                f"{k} processes, bucket 200/s{' integer hints' if integer else ''}",
                300 * k if k == 4 else 200 * k,
                ((0, _bucket(200, 10, integer)),),
                processes=k,
            )
            for k in (4, 8)
            for integer in (False, True)
        ),
    )
}


@attrs.frozen
class SimResult:
    name: str
    n: int
    seconds: float
    ideal: float
    rate_limited: int
    delivered: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.ideal


async def _run(
    regime: Regime,
    concurrency: int,
    cpu_cost: float,
    make_pacer: Callable[[Callable[[], float], Any], Pacer],
    seed: int,
    shared_tuning: PacingTuning,
) -> tuple[float, int, int]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    rng = random.Random(seed)
    clock = loop.time
    start = clock()
    limits = list(regime.limits)
    limiter: Any = None
    limit_index = -1

    def server_acquire(now: float) -> float | int | None:
        nonlocal limiter, limit_index
        index = max(i for i, (since, _) in enumerate(limits) if now - start >= since)
        if index != limit_index:
            limit_index = index
            limiter = limits[index][1]._limiter(start + limits[index][0], now)
        hint: float | int | None = limiter.acquire(now)
        return hint

    async def late_sleep(seconds: float) -> None:
        # A timer fires late by a random amount: the loop is busy with other callbacks.
        await asyncio.sleep(seconds + rng.expovariate(1 / regime.timer_lateness))

    for at, seconds in regime.stalls:

        def stall(seconds: float = seconds) -> None:
            loop.virtual_now += seconds  # a blocking call: every timer and answer is late

        loop.call_at(start + at, stall)

    if regime.processes > 1:
        shared = _SharedBackend(shared_tuning, clock)
        pacers = [
            Pacer(backend=shared, clock=clock, sleep=late_sleep) for _ in range(regime.processes)
        ]
        semaphores = [asyncio.Semaphore(PER_PROCESS) for _ in pacers]
        concurrency = PER_PROCESS * regime.processes
    else:
        pacers = [make_pacer(clock, late_sleep)]
        semaphores = [asyncio.Semaphore(concurrency)]
    retry = RetryPolicy(max_retries=1000, sleep=asyncio.sleep, random=rng.random)
    consumer = asyncio.Lock()
    pause_at = start + regime.consumer_pause[0] if regime.consumer_pause else None
    cpu_free = start
    remaining = regime.n
    throttled = 0
    delivered = 0

    async def use_cpu() -> None:
        nonlocal cpu_free
        now = clock()
        begin = max(now, cpu_free)
        cpu_free = begin + cpu_cost
        await asyncio.sleep(cpu_free - now)

    async def worker(index: int) -> None:
        nonlocal remaining, throttled, delivered, pause_at
        pacer = pacers[index % len(pacers)]
        semaphore = semaphores[index % len(pacers)]
        while remaining > 0:
            remaining -= 1
            attempt = 0
            while True:
                attempt += 1
                fast = pacer.try_acquire()
                sent_at = fast if fast is not None else await pacer.acquire()
                half = regime.latency / 2 * rng.uniform(0.75, 1.25)
                async with semaphore:
                    await use_cpu()
                    await asyncio.sleep(half)
                    hint = server_acquire(clock())
                    await asyncio.sleep(half)
                if hint is None:
                    pacer.on_success(sent_at)
                    delivered += 1
                    break
                throttled += 1
                await pacer.on_throttle(sent_at, float(hint))
                error = RateLimitError("429", status=429, retry_after=float(hint))
                reset = pacer.paces_reset(float(hint))  # bulk: as the pipeline asks
                wait = retry.compute_wait(error, attempt, paced=True, reset_paced=reset)
                await asyncio.sleep(wait)
            async with consumer:  # outcomes are consumed one at a time
                if pause_at is not None and clock() >= pause_at:
                    assert regime.consumer_pause is not None
                    pause_at = None
                    await asyncio.sleep(regime.consumer_pause[1])

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return clock() - start, throttled, delivered


def simulate(
    name: str,
    make_pacer: Callable[[Callable[[], float], Any], Pacer] | None = None,
    *,
    seed: int = 0,
    concurrency: int = 64,
    cpu_cost: float = 0.0001,
    shared_tuning: PacingTuning | None = None,
) -> SimResult:
    """Run one regime in virtual time with one seed; report time, ideal and 429s.
    ``shared_tuning``: the shared backend's in the regimes with several processes
    (default: the Redis backend's, checking in every ``SHARED_SYNC_EVERY``)."""
    shared_tuning = shared_tuning or PacingTuning(
        sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW
    )
    regime = REGIMES[name]
    factory = make_pacer or (lambda clock, sleep: Pacer(clock=clock, sleep=sleep))
    loop = VirtualTimeLoop()
    try:
        seconds, throttled, delivered = loop.run_until_complete(
            _run(regime, concurrency, cpu_cost, factory, seed, shared_tuning)
        )
    finally:
        loop.close()
    return SimResult(name, regime.n, seconds, regime.ideal(), throttled, delivered)


def spread(name: str, runs: int, **options: Any) -> str:
    """One line: the regime over ``runs`` seeds (median, slowest, slowest/median, 429s)."""
    results = [simulate(name, seed=seed, **options) for seed in range(runs)]
    ratios = sorted(r.ratio for r in results)
    median = statistics.median(ratios)
    worst_429 = max(r.rate_limited / r.n for r in results)
    lost = sum(r.n - r.delivered for r in results)
    return (
        f"{name:<40} ideal {results[0].ideal:6.2f}s  ratio median {median:5.2f}x "
        f"[{ratios[0]:.2f}-{ratios[-1]:.2f}]  slowest/median {ratios[-1] / median:4.2f}  "
        f"429s max {worst_429:6.1%}  undelivered {lost}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pacing_sim")
    parser.add_argument("--runs", type=int, default=12, help="seeds per regime")
    parser.add_argument("--only", help="regimes whose name contains this")
    parser.add_argument(
        "--sync-every",
        type=float,
        default=SHARED_SYNC_EVERY,
        help="PacingTuning.sync_every of the shared backend (processes regimes)",
    )
    args = parser.parse_args()
    shared = PacingTuning(sync_every=args.sync_every, initial_window=SHARED_INITIAL_WINDOW)
    print(
        f"{args.runs} runs per regime, 64 in flight (processes: {PER_PROCESS} each, "
        f"one shared backend, sync_every {args.sync_every}), nobody told the rate"
    )
    for name in REGIMES:
        if args.only and args.only not in name:
            continue
        print(spread(name, args.runs, shared_tuning=shared), flush=True)


if __name__ == "__main__":
    main()
