"""Deterministic pacing simulator: the client's Pacer against the fake server's limiters.

Runs on an event loop whose clock jumps to the next timer instead of sleeping, so a
10-second rate-limited job simulates in well under a second, identically every time.
Workers mirror the client pipeline: pacer -> semaphore -> (CPU cost, network latency,
limiter) -> on_success / on_throttle + the RetryPolicy's wait.  Used to tune
``opentrain_async._pacing``; the real benchmark (``python -m benchmarks``) confirms.

    python -m benchmarks.pacing_sim
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from collections.abc import Callable
from typing import Any

import attrs

from opentrain_async import Pacer, RateLimitError, RetryPolicy
from opentrain_async.testing import FixedWindow, TokenBucket

__all__ = ["SimResult", "VirtualTimeLoop", "simulate"]


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
    policy: TokenBucket | FixedWindow,
    n: int,
    concurrency: int,
    latency: float,
    cpu_cost: float,
    make_pacer: Callable[[Callable[[], float], Any], Pacer],
) -> tuple[float, int, int]:
    loop = asyncio.get_running_loop()
    clock = loop.time
    start = clock()
    limiter = policy._limiter(start, start)
    pacer = make_pacer(clock, asyncio.sleep)
    retry = RetryPolicy(max_retries=1000, sleep=asyncio.sleep, random=lambda: 0.5)
    semaphore = asyncio.Semaphore(concurrency)
    cpu_free = start
    remaining = n
    throttled = 0
    delivered = 0

    async def use_cpu() -> None:
        nonlocal cpu_free
        now = clock()
        begin = max(now, cpu_free)
        cpu_free = begin + cpu_cost
        await asyncio.sleep(cpu_free - now)

    async def worker() -> None:
        nonlocal remaining, throttled, delivered
        while remaining > 0:
            remaining -= 1
            attempt = 0
            while True:
                attempt += 1
                sent_at = await pacer.acquire()
                async with semaphore:
                    await use_cpu()
                    await asyncio.sleep(latency / 2)
                    hint = limiter.acquire(clock())
                    await asyncio.sleep(latency / 2)
                if hint is None:
                    pacer.on_success(sent_at)
                    delivered += 1
                    break
                throttled += 1
                await pacer.on_throttle(sent_at, float(hint))
                error = RateLimitError("429", status=429, retry_after=float(hint))
                await asyncio.sleep(retry.compute_wait(error, attempt))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return clock() - start, throttled, delivered


SCENARIOS: dict[str, tuple[TokenBucket | FixedWindow, int, float]] = {
    "bucket 500/s exact hints": (TokenBucket(rate=500, burst=10), 1500, 500),
    "bucket 200/s integer hints": (TokenBucket(rate=200, burst=10, integer_hints=True), 1000, 200),
    "fixed window 100/1s": (FixedWindow(limit=100, window=1.0), 500, 100),
    "bucket 50/s exact hints": (TokenBucket(rate=50, burst=5), 300, 50),
    "bucket 2000/s burst 50": (TokenBucket(rate=2000, burst=50), 6000, 2000),
    "fixed window 300/1s integer": (
        FixedWindow(limit=300, window=1.0, integer_hints=True),
        1500,
        300,
    ),
}


def simulate(
    name: str,
    make_pacer: Callable[[Callable[[], float], Any], Pacer] | None = None,
    *,
    concurrency: int = 64,
    latency: float = 0.0008,
    cpu_cost: float = 0.0001,
) -> SimResult:
    """Run one scenario in virtual time and report time, ideal and 429s."""
    policy, n, rate = SCENARIOS[name]
    factory = make_pacer or (lambda clock, sleep: Pacer(clock=clock, sleep=sleep))
    loop = VirtualTimeLoop()
    try:
        seconds, throttled, delivered = loop.run_until_complete(
            _run(policy, n, concurrency, latency, cpu_cost, factory)
        )
    finally:
        loop.close()
    return SimResult(name, n, seconds, n / rate, throttled, delivered)


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    for name in names:
        r = simulate(name)
        print(
            f"{r.name:<30} {r.seconds:7.2f}s  {r.ratio:5.2f}x ideal  "
            f"429s {r.rate_limited:5} ({r.rate_limited / r.n:6.1%})  delivered {r.delivered}"
        )


if __name__ == "__main__":
    main()
