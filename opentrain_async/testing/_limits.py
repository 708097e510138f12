"""Rate-limit policies for the fake server's POST /messages.

The real limit is undocumented, so the fake offers two common shapes (a token bucket
and a fixed window) whose retry hints are exact and deterministic under an injected
clock. A policy object is immutable configuration; the server keeps one limiter state
per account (token user), as a real per-account messaging limit would.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import attrs

__all__ = ["FixedWindow", "RateLimit", "TokenBucket"]


def _hint(seconds: float, integer: bool) -> float | int:
    """Round a wait to the wire form: exact float, or whole seconds (at least 1)."""
    if integer:
        return max(1, math.ceil(round(seconds, 9)))
    return seconds


@attrs.frozen
class TokenBucket:
    """Token bucket: `rate` tokens per second, at most `burst` stored; a send costs one."""

    rate: float
    burst: int = 1
    integer_hints: bool = False
    retry_after_header: bool = False

    def __attrs_post_init__(self) -> None:
        """Reject configurations that can never admit a request."""
        if self.rate <= 0:
            raise ValueError("rate must be > 0")
        if self.burst < 1:
            raise ValueError("burst must be >= 1")

    def _limiter(self, origin: float, now: float) -> _BucketLimiter:
        """A fresh, full bucket."""
        return _BucketLimiter(self, now)


@attrs.frozen
class FixedWindow:
    """Fixed window: at most `limit` sends per `window` seconds, aligned to the clock origin."""

    limit: int
    window: float = 1.0
    integer_hints: bool = False
    retry_after_header: bool = False

    def __attrs_post_init__(self) -> None:
        """Reject configurations that can never admit a request."""
        if self.limit < 1:
            raise ValueError("limit must be >= 1")
        if self.window <= 0:
            raise ValueError("window must be > 0")

    def _limiter(self, origin: float, now: float) -> _WindowLimiter:
        """A fresh window counter."""
        return _WindowLimiter(self, origin)


RateLimit: TypeAlias = "TokenBucket | FixedWindow"


class _BucketLimiter:
    """Mutable token-bucket state for one account."""

    __slots__ = ("_burst", "_integer", "_last", "_rate", "_tokens")

    def __init__(self, policy: TokenBucket, now: float) -> None:
        self._rate = float(policy.rate)
        self._burst = float(policy.burst)
        self._integer = policy.integer_hints
        self._tokens = self._burst
        self._last = now

    def acquire(self, now: float) -> float | int | None:
        """Take a token and return None, or return the wait until one is available."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return _hint((1.0 - self._tokens) / self._rate, self._integer)


class _WindowLimiter:
    """Mutable fixed-window state for one account."""

    __slots__ = ("_count", "_index", "_integer", "_limit", "_origin", "_window")

    def __init__(self, policy: FixedWindow, origin: float) -> None:
        self._limit = policy.limit
        self._window = float(policy.window)
        self._integer = policy.integer_hints
        self._origin = origin
        self._index = -1
        self._count = 0

    def acquire(self, now: float) -> float | int | None:
        """Count a send in the current window and return None, or the wait until it ends."""
        index = math.floor((now - self._origin) / self._window)
        if index != self._index:
            self._index = index
            self._count = 0
        if self._count < self._limit:
            self._count += 1
            return None
        end = self._origin + (index + 1) * self._window
        return _hint(end - now, self._integer)
