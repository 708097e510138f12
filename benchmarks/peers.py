"""Peers' client-side rate control, written once for the simulator and the real runs.

``BotocoreStyleLimiter`` mirrors botocore's adaptive retry mode (``botocore.retries.
adaptive``): a token bucket whose fill rate is unset (no pacing) until the first
throttle, then set by a CUBIC curve (beta 0.7, scale 0.4) from the request rate it
measured (``RateClocker``: 0.5 s buckets smoothed by 0.8), capped at twice that
measured rate; a throttled request is retried after full-jitter exponential backoff
(``random() * min(20, 2 ** (attempt - 1))`` seconds, botocore's standard mode).

``aiohttp_retry_wait`` is aiohttp-retry's ``ExponentialRetry(start_timeout=0.1)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["RETRY_ATTEMPTS", "BotocoreStyleLimiter", "aiohttp_retry_wait", "botocore_backoff"]

RETRY_ATTEMPTS = 10
"""Attempts per message for both peers (aiohttp-retry as configured in runners.py;
botocore's default is 3, raised so that it loses as little as aiohttp-retry)."""


def aiohttp_retry_wait(attempt: int) -> float:
    """aiohttp-retry ExponentialRetry(start_timeout=0.1, factor=2, max_timeout=30)."""
    return float(min(0.1 * 2**attempt, 30.0))


def botocore_backoff(attempt: int, rand: float) -> float:
    """botocore standard mode: full jitter, base 2, at most 20 s."""
    return float(rand * min(20.0, 2.0 ** (attempt - 1)))


class BotocoreStyleLimiter:
    """botocore's ClientRateLimiter (adaptive mode), async, with an injectable clock."""

    _BETA = 0.7
    _SCALE = 0.4
    _SMOOTH = 0.8
    _BUCKET = 0.5
    _MIN_RATE = 0.5

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        import asyncio

        self._clock = clock
        self._sleep = sleep or asyncio.sleep
        self._enabled = False
        self._rate = 0.0  # the bucket's fill rate (max_rate)
        self._tokens = 0.0
        self._last_refill: float | None = None
        self._next_free = 0.0  # serialises waiters (botocore holds a lock while it sleeps)
        self._measured = 0.0
        self._count = 0
        self._last_bucket = math.floor(clock() / self._BUCKET) * self._BUCKET
        self._w_max = 0.0
        self._k = 0.0
        self._last_fail = clock()

    async def acquire(self) -> None:
        """Wait for a token (no wait before the first throttle)."""
        if not self._enabled:
            return
        now = self._clock()
        start = max(now, self._next_free)
        self._next_free = start + 1.0 / self._rate
        if start > now:
            await self._sleep(start - now)

    def _record(self) -> float:
        now = self._clock()
        bucket = math.floor(now / self._BUCKET) * self._BUCKET
        self._count += 1
        if bucket > self._last_bucket:
            rate = self._count / (bucket - self._last_bucket)
            self._measured = rate * self._SMOOTH + self._measured * (1 - self._SMOOTH)
            self._count = 0
            self._last_bucket = bucket
        return self._measured

    def on_response(self, throttled: bool) -> None:
        """Update the fill rate from one response (botocore's on_receiving_response)."""
        measured = self._record()
        now = self._clock()
        if throttled:
            current = measured if not self._enabled else min(measured, self._rate)
            self._w_max = current
            self._k = (self._w_max * (1 - self._BETA) / self._SCALE) ** (1 / 3)
            self._last_fail = now
            self._enabled = True
            self._rate = max(current * self._BETA, self._MIN_RATE)
        elif self._enabled:
            cubic = self._SCALE * (now - self._last_fail - self._k) ** 3 + self._w_max
            self._rate = max(min(cubic, 2 * measured), self._MIN_RATE)
