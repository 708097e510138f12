"""The drawn family in virtual time: this SDK's pacer and two peers on the same draws.

Each draw (``benchmarks.family``) runs on ``pacing_sim``'s virtual-time loop: workers
(64 in flight, or 16 per process with one shared backend as processes share Redis, each
process its own share of the messages as on the real stack) send ``n`` messages through
the pacer, each request meeting the draw's limiter after the whole
drawn latency (with its jitter) and answered at once, as the fake server does (``legs``),
its 429 carrying the draw's hint style.
Timers fire late by a random amount, as on a busy loop.  The ratio is to the strict
ideal (``Draw.ideal``, never less than n x the simulated CPU cost per request).

Printed per runner: median, p90 and worst ratio, the 429 share (median, p90), messages
undelivered, and the five worst draws with their parameters and seed; then the draws
on which this SDK was slower than aiohttp-retry or drew more 429s.  Tune on the
``--tune`` seeds (0-499), report on others (``--first 10000``):

    python -m benchmarks.family_sim --draws 500 --first 10000
    python -m benchmarks.family_sim --only 10042          (one draw, any runner)

``--runners opentrain_async,oracle`` adds the floor (``benchmarks.family_oracle``: a
client told the limit, not each request's latency; ``oracle-late`` aims past the
jitter): its own breakdown, how many draws it leaves above the goals, and ours / oracle
per draw with the draws where the pacer, not physics, loses most.  ``--no-jitter``
runs the same draws without their jitter, to tell what the oracle loses to it:

    python -m benchmarks.family_sim --first 160000 --runners opentrain_async,oracle --breakdown

The real benchmark (``family_run``) draws windows of at most 2 s, the simulator up to
60 s: on the same seeds the two families differ (short windows read worse: seeds
160000-160299 1.37x median with 2 s, 1.13x with 60 s, before ``legs``).  To set the
simulator beside a real run, draw its family (``--max-window 2``), or compare per draw
with ``python -m benchmarks.family_gap RUN.json``.

``--untuned`` measures issue 19's untuned client instead: no options, 64 in flight,
against a bucket of 300/s with a burst of 10, 900 messages, 100 and 200 ms round trips
with +-10% jitter, exact and whole-second hints; median, p90 and 429 share over
``--draws`` seeds (the seed moves the jitter and the timers) from ``--first``:

    python -m benchmarks.family_sim --untuned --first 0 --draws 12     (tuning seeds)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

from opentrain_async import Pacer, RateLimitError, RetryPolicy
from opentrain_async._pacing.backend import Reservation
from opentrain_async._pacing.state import (
    SHARED_INITIAL_WINDOW,
    SHARED_SYNC_EVERY,
    PacingFeedback,
    PacingState,
    PacingTuning,
)
from opentrain_async.testing._limits import _ScheduleLimiter

from .family import Draw, draw
from .family_oracle import ORACLES, OraclePlan
from .pacing_sim import BACKEND_LATENCY, VirtualTimeLoop, _SharedBackend
from .peers import RETRY_ATTEMPTS, BotocoreStyleLimiter, aiohttp_retry_wait, botocore_backoff

__all__ = ["RUNNERS", "Result", "run_draw", "summarise"]

CPU_COST = 0.0001
"""Seconds of client CPU per request (10,000/s): the simulated machine's ceiling."""
TIMER_LATENESS = 0.0003
"""Mean seconds a timer fires late (exponential), as in pacing_sim."""
RUNNERS = ("opentrain_async", "aiohttp-retry", "botocore-style")
"""The clients compared by default; ``ORACLES`` (``benchmarks.family_oracle``), told the
limit, are the floor and run only when named (``--runners opentrain_async,oracle``)."""


@attrs.frozen
class Result:
    runner: str
    draw: Draw
    seconds: float
    ideal: float
    throttled: int
    delivered: int

    @property
    def ratio(self) -> float:
        return self.seconds / self.ideal

    @property
    def share(self) -> float:
        return self.throttled / self.draw.n


def _hint(style: str, wait: float) -> float | None:
    """The hint the client reads for an exact wait, in the draw's style."""
    if style == "exact":
        return wait
    if style == "none":
        return None
    return float(max(1, math.ceil(round(wait, 9))))


def legs(latency: float, jitter: float, u: float) -> tuple[float, float]:
    """A request's seconds to the limiter and back, ``u`` in [-1, 1] drawing its jitter.

    As the fake server the real benchmark runs: it sleeps a request's whole (jittered)
    latency before its limiter decides, then answers at once.  So the limiter sees each
    request the full jitter late, not half of it: arrivals at a small bucket bunch twice
    as much as a half-way limiter would show (on seed 999255714's 40 draws the simulator
    read real/sim per draw within 0.148 on a log scale with the limiter half way, 0.111
    with it where the server has it)."""
    return latency * (1 + jitter * u), 0.0


class _Process:
    """One process's view of the shared state, judging a 429 as ``RedisPacingBackend``
    does: before the state has a rate, a request the process admitted on its own is
    judged as of when it last heard from Redis (``report``: part of the burst another
    process's 429 may already have paused).  So the first cut's ``recover`` (the
    search's period: ``now`` minus the 429's admission) spans from that last answer,
    not from the send.  The simulator's processes shared one in-memory state without
    this: on seed 93934376 (16 processes, a fixed window of 137 per 1.59 s, no hints) the
    real first cut read a period of 0.434 s, the simulator's 0.112 s; its search doubled
    into the window still shut, cut again and crawled (2.72x before ``lift``, 1.27-1.80x
    real; branch ``simgap``, benchmarks/README.md)."""

    def __init__(self, shared: _SharedBackend, clock: Callable[[], float]) -> None:
        self._shared = shared
        self._clock = clock
        self.tuning = shared.tuning
        self._known_at: float | None = None  # the shared state's time of its last answer
        self._paced = False  # its last answer had a rate

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        reservation = await self._shared.reserve(count, successes=successes, cap=cap)
        self._known_at, self._paced = reservation.now, reservation.rate is not None
        return reservation

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        known = self._known_at
        if not self._paced and feedback.throttled_at is not None and known is not None:
            feedback = attrs.evolve(feedback, throttled_at=min(feedback.throttled_at, known))
        state = await self._shared.report(feedback, cap=cap)
        now = self._clock() - BACKEND_LATENCY / 2  # the state's time when it answered
        self._known_at, self._paced = now, self._paced or state.limit is not None
        return state

    async def load(self) -> PacingState:
        return await self._shared.load()

    async def aclose(self) -> None:
        await self._shared.aclose()

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        self._shared.attach(key, on_fallback)


async def _run(
    d: Draw,
    runner: str,
    make_pacer: Callable[..., Pacer] | None,
    limiter_factory: Callable[[Any], Any] = _ScheduleLimiter,
) -> tuple[float, int, int]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    rng = random.Random(d.seed * 7919 + (RUNNERS + ORACLES).index(runner))
    clock = loop.time
    start = clock()
    limiter = limiter_factory(d.schedule())
    processes = d.processes
    per_process = d.in_flight // processes

    async def late_sleep(seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0) + rng.expovariate(1 / TIMER_LATENESS))

    pacers: list[Any] = []
    if runner == "opentrain_async":
        if processes > 1:
            shared = _SharedBackend(
                PacingTuning(sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW),
                clock,
            )
            pacers = [
                Pacer(backend=_Process(shared, clock), clock=clock, sleep=late_sleep)  # type: ignore[arg-type]
                for _ in range(processes)
            ]
        else:
            factory = make_pacer or (lambda clock, sleep: Pacer(clock=clock, sleep=sleep))
            pacers = [factory(clock, late_sleep)]
    elif runner == "botocore-style":
        pacers = [BotocoreStyleLimiter(clock, late_sleep) for _ in range(processes)]
    plan = OraclePlan(
        d, clock, late_sleep, lambda: cpu_free, cpu_cost=CPU_COST, late=runner == "oracle-late"
    )
    semaphores = [asyncio.Semaphore(per_process) for _ in range(processes)]
    retry = RetryPolicy(max_retries=1000, sleep=asyncio.sleep, random=rng.random)
    cpu_free = start
    remaining = d.n
    throttled = 0
    delivered = 0

    async def use_cpu() -> None:
        nonlocal cpu_free
        now = clock()
        cpu_free = max(now, cpu_free) + CPU_COST
        await asyncio.sleep(cpu_free - now)

    async def exchange(semaphore: asyncio.Semaphore) -> float | bool | None:
        """One request: True when accepted, else the hint (None: a bare 429)."""
        to_limiter, back = legs(d.latency, d.jitter, rng.uniform(-1, 1))
        async with semaphore:
            await use_cpu()
            await asyncio.sleep(to_limiter)
            wait = limiter.acquire(clock())
            await asyncio.sleep(back)
        return True if wait is None else _hint(d.hints, wait)

    # Each process sends its own share, as benchmarks.processes splits the items.
    left = [len(range(p, d.n, processes)) for p in range(processes)]

    async def ours(index: int) -> None:
        nonlocal throttled, delivered
        process = index % processes
        pacer = pacers[process]
        semaphore = semaphores[process]
        while left[process] > 0:
            left[process] -= 1
            attempt = 0
            while True:
                attempt += 1
                fast = pacer.try_acquire()
                sent_at = fast if fast is not None else await pacer.acquire()
                answer = await exchange(semaphore)
                if answer is True:
                    pacer.on_success(sent_at)
                    delivered += 1
                    break
                throttled += 1
                hint = None if answer is None else float(answer)
                await pacer.on_throttle(sent_at, hint)
                error = RateLimitError("429", status=429, retry_after=hint)
                reset = hint is not None and pacer.paces_reset(hint)
                wait = retry.compute_wait(error, attempt, paced=True, reset_paced=reset)
                await asyncio.sleep(wait)

    async def peer(index: int) -> None:
        nonlocal remaining, throttled, delivered
        limiter_ = pacers[index % processes] if pacers else None
        semaphore = semaphores[index % processes]
        while remaining > 0:
            remaining -= 1
            for attempt in range(1, RETRY_ATTEMPTS + 1):
                if limiter_ is not None:
                    await limiter_.acquire()
                answer = await exchange(semaphore)
                if limiter_ is not None:
                    limiter_.on_response(answer is not True)
                if answer is True:
                    delivered += 1
                    break
                throttled += 1
                if attempt == RETRY_ATTEMPTS:
                    break  # given up: lost
                if limiter_ is None:
                    await asyncio.sleep(aiohttp_retry_wait(attempt - 1))
                else:
                    await asyncio.sleep(botocore_backoff(attempt, rng.random()))

    async def oracle(index: int) -> None:
        nonlocal remaining, throttled, delivered
        semaphore = semaphores[index % processes]
        while remaining > 0:
            remaining -= 1
            again = False
            while True:
                at = await plan.turn(again=again)
                if await exchange(semaphore) is True:
                    delivered += 1
                    break
                throttled += 1
                plan.refused(at)
                again = True

    work = ours if runner == "opentrain_async" else oracle if runner in ORACLES else peer
    await asyncio.gather(*(work(i) for i in range(d.in_flight)))
    elapsed = clock() - start
    for pacer in pacers:  # successes still on their way to the shared state
        if isinstance(pacer, Pacer):
            await pacer.flushed()
    return elapsed, throttled, delivered


def run_draw(
    d: Draw,
    runner: str = "opentrain_async",
    make_pacer: Callable[..., Pacer] | None = None,
    *,
    limiter_factory: Callable[[Any], Any] = _ScheduleLimiter,
) -> Result:
    """One draw, one runner, in virtual time (``limiter_factory``: the server's
    limiter from the draw's schedule, for a tool that records its answers)."""
    loop = VirtualTimeLoop()
    try:
        seconds, throttled, delivered = loop.run_until_complete(
            _run(d, runner, make_pacer, limiter_factory)
        )
    finally:
        loop.close()
    ideal = max(d.ideal(), d.n * CPU_COST + d.latency)
    return Result(runner, d, seconds, ideal, throttled, delivered)


UNTUNED_LATENCIES = (0.1, 0.2)
UNTUNED_HINTS = ("exact", "whole")


def untuned_draw(seed: int, latency: float, hints: str) -> Draw:
    """Issue 19's untuned client: a bucket of 300/s, burst 10, 900 messages, one
    process at its defaults (64 in flight), ``latency`` +-10%."""
    return Draw(seed, "bucket", 300.0, 10, 0.0, (), hints, latency, 0.1, 1, 900)


def untuned(seeds: range, runner: str = "opentrain_async") -> dict[tuple[float, str], list[Result]]:
    """The untuned client's results per (latency, hint style) over ``seeds``."""
    return {
        (latency, hints): [run_draw(untuned_draw(s, latency, hints), runner) for s in seeds]
        for latency in UNTUNED_LATENCIES
        for hints in UNTUNED_HINTS
    }


def _print_untuned(seeds: range, runners: list[str]) -> None:
    print(f"untuned client, bucket 300/s burst 10, n 900, seeds {seeds[0]}..{seeds[-1]}")
    for runner in runners:
        for (latency, hints), rs in untuned(seeds, runner).items():
            print(f"{runner:<16} {latency * 1000:3.0f} ms {hints:<6} {summarise(rs)}", flush=True)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def summarise(results: list[Result]) -> str:
    """One line: median, p90, worst ratio; 429 share median and p90; undelivered."""
    ratios = [r.ratio for r in results]
    shares = [r.share for r in results]
    lost = sum(r.draw.n - r.delivered for r in results)
    return (
        f"median {statistics.median(ratios):5.2f}x  p90 {_pct(ratios, 0.9):5.2f}x  "
        f"worst {max(ratios):6.2f}x  429s median {statistics.median(shares):6.1%} "
        f"p90 {_pct(shares, 0.9):6.1%}  undelivered {lost}"
    )


def _print_breakdown(name: str, results: list[Result]) -> None:
    """One runner by part of the family: kind, hints, latency, processes, moving."""
    print(f"\n{'this SDK' if name == 'opentrain_async' else name} by part of the family:")
    groups: dict[str, list[Result]] = {}
    for r in results:
        d = r.draw
        for label in d.parts():
            groups.setdefault(label, []).append(r)
        if d.processes > 1 and d.hints == "none":  # the shared wall's probe (issue 19)
            groups.setdefault("none x 2-16 proc", []).append(r)
        if d.kind == "bucket":  # a small burst cannot absorb jitter (the oracle's misses)
            groups.setdefault(f"bucket burst {'1-3' if d.burst <= 3 else '4+'}", []).append(r)
        if d.n <= 50:  # a few 429s are a large share of a small job
            groups.setdefault("n <= 50", []).append(r)
    for label, rs in sorted(groups.items()):
        print(f"  {label:<20} {len(rs):>4}  {summarise(rs)}")


def _print_against_oracle(ours: list[Result] | None, oracle: list[Result]) -> None:
    """Where the oracle itself misses issue 19's goals, and ours / oracle per draw: the
    draws where the pacer, not what no client can know, loses."""
    name = oracle[0].runner
    misses = (
        ("above 1.15x", [r for r in oracle if r.ratio > 1.15]),
        ("above 1.5x", [r for r in oracle if r.ratio > 1.5]),
        ("above 5% 429s", [r for r in oracle if r.share > 0.05]),
    )
    print(f"\n{name} itself: " + ", ".join(f"{label} {len(rs)}" for label, rs in misses))
    if ours is None:
        return
    pairs = sorted(zip(ours, oracle, strict=True), key=lambda p: -(p[0].seconds / p[1].seconds))
    ratios = [o.seconds / r.seconds for o, r in pairs]
    print(
        f"ours / {name} per draw: median {statistics.median(ratios):.2f}x  "
        f"p90 {_pct(ratios, 0.9):.2f}x  worst {max(ratios):.2f}x; five worst:"
    )
    for o, r in pairs[:5]:
        print(
            f"  {o.seconds / r.seconds:5.2f}x  ours {o.ratio:.2f}x {o.share:.1%}, "
            f"{name} {r.ratio:.2f}x {r.share:.1%}: {o.draw.describe()}"
        )


def main(argv: list[str] | None = None) -> None:
    # A long pause's WARNING names a wall-clock time, meaningless in virtual time, and
    # hundreds of draws would print thousands of them between the results.
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_sim")
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--first", type=int, default=10_000, help="first seed (tune: 0)")
    parser.add_argument("--only", type=int, help="run this one seed")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--kind", help="only draws of this kind (bucket, fixed, sliding)")
    parser.add_argument(
        "--breakdown", action="store_true", help="this SDK (and oracles) by kind, hints..."
    )
    parser.add_argument("--untuned", action="store_true", help="issue 19's untuned client")
    parser.add_argument("--processes", type=int, help="every draw shared by this many")
    parser.add_argument("--hints", help="only draws with these hints (exact, whole, header, none)")
    parser.add_argument("--shared", action="store_true", help="only draws of 2-16 processes")
    parser.add_argument(
        "--no-jitter", action="store_true", help="every draw without its latency jitter"
    )
    parser.add_argument(
        "--max-window",
        type=float,
        default=60.0,
        help="longest window, seconds (the real benchmark's family_run draws 2)",
    )
    parser.add_argument(
        "--as-hints", help="the draws chosen, with these hints instead (what rounding costs)"
    )
    parser.add_argument("--min-burst", type=int, help="only buckets of at least this burst")
    parser.add_argument("--moving", action="store_true", help="only limits that change or flap")
    parser.add_argument("--save", help="write this SDK's ratio and 429s per seed to this JSON")
    args = parser.parse_args(argv)
    runners = args.runners.split(",")
    if args.untuned:
        first = args.only if args.only is not None else args.first
        _print_untuned(range(first, first + (1 if args.only is not None else args.draws)), runners)
        return
    seeds = [args.only] if args.only is not None else range(args.first, args.first + args.draws)
    draws = [draw(s, max_window=args.max_window, processes=args.processes) for s in seeds]
    if args.kind:
        draws = [d for d in draws if d.kind == args.kind]
    if args.min_burst:
        draws = [d for d in draws if d.kind == "bucket" and d.burst >= args.min_burst]
    if args.hints:
        draws = [d for d in draws if d.hints == args.hints]
    if args.shared:
        draws = [d for d in draws if d.processes > 1]
    if args.moving:
        draws = [d for d in draws if d.changes]
    if args.no_jitter:  # what the oracle loses to jitter: the same draws without it
        draws = [attrs.evolve(d, jitter=0.0) for d in draws]
    if args.as_hints:  # what a hint's rounding (or absence) costs on these draws
        draws = [attrs.evolve(d, hints=args.as_hints) for d in draws]
    print(f"{len(draws)} draws, seeds {seeds[0]}..{seeds[-1]}, virtual time")
    by_runner: dict[str, list[Result]] = {}
    began = time.perf_counter()
    for name in runners:
        by_runner[name] = [run_draw(d, name) for d in draws]
        print(f"{name:<16} {summarise(by_runner[name])}", flush=True)
    print(f"({time.perf_counter() - began:.0f} s of wall time)", file=sys.stderr)
    if args.save and "opentrain_async" in by_runner:  # per draw, to count draws that moved
        rows = {r.draw.seed: [r.ratio, r.share] for r in by_runner["opentrain_async"]}
        with open(args.save, "w", encoding="utf-8") as out:
            json.dump(rows, out)
    for name in runners:
        print(f"\nfive worst draws, {name}:")
        for r in sorted(by_runner[name], key=lambda r: -r.ratio)[:5]:
            print(f"  {r.ratio:6.2f}x  429s {r.share:6.1%}  {r.draw.describe()}")
    if args.breakdown:
        for name in ("opentrain_async", *ORACLES):
            if name in by_runner:
                _print_breakdown(name, by_runner[name])
    for name in ORACLES:
        if name in by_runner:
            _print_against_oracle(by_runner.get("opentrain_async"), by_runner[name])
    if "opentrain_async" in by_runner and "aiohttp-retry" in by_runner:
        slower = [
            (o, p)
            for o, p in zip(by_runner["opentrain_async"], by_runner["aiohttp-retry"], strict=True)
            if o.seconds > p.seconds or o.throttled > p.throttled
        ]
        print(
            f"\ndraws where aiohttp-retry was faster or drew fewer 429s: {len(slower)}/{len(draws)}"
        )
        for o, p in slower[:5]:
            print(
                f"  ours {o.ratio:.2f}x {o.share:.1%} vs {p.ratio:.2f}x {p.share:.1%}: "
                f"{o.draw.describe()}"
            )


if __name__ == "__main__":
    main()
