"""Rate-limit policies for the fake server's POST /messages.

The real limit is undocumented, so the fake offers the common shapes (a token bucket,
a fixed window, a sliding window) whose retry hints are exact and deterministic under an
injected clock, and ``LimitSchedule``: one of them changing over time (a drop, a rise,
a flapping limit), with the hint sent in any style a server uses (exact, rounded up to
whole seconds, a ``Retry-After`` header only, or none).  A policy object is immutable
configuration; the server keeps one limiter state per account (token user), as a real
per-account messaging limit would.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

__all__ = [
    "HINT_STYLES",
    "FixedWindow",
    "LimitSchedule",
    "RateLimit",
    "SlidingWindow",
    "TokenBucket",
]


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
        if not 0 < self.rate < math.inf:  # NaN too: it compares false either way
            raise ValueError("rate must be > 0 and finite")
        if self.burst < 1:
            raise ValueError("burst must be >= 1")

    def _limiter(self, origin: float, now: float) -> _BucketLimiter:
        """A fresh, full bucket."""
        return _BucketLimiter(self, now)


def _check_window(limit: int, window: float) -> None:
    """A window (fixed or sliding) admits at least one send in a positive span."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    if not 0 < window < math.inf:  # NaN too
        raise ValueError("window must be > 0 and finite")


@attrs.frozen
class FixedWindow:
    """Fixed window: at most `limit` sends per `window` seconds, aligned to the clock origin."""

    limit: int
    window: float = 1.0
    integer_hints: bool = False
    retry_after_header: bool = False

    def __attrs_post_init__(self) -> None:
        """Reject configurations that can never admit a request."""
        _check_window(self.limit, self.window)

    def _limiter(self, origin: float, now: float) -> _WindowLimiter:
        """A fresh window counter."""
        return _WindowLimiter(self, origin)


@attrs.frozen
class SlidingWindow:
    """Sliding window (a log): at most `limit` sends in any `window` seconds."""

    limit: int
    window: float = 1.0
    integer_hints: bool = False
    retry_after_header: bool = False

    def __attrs_post_init__(self) -> None:
        """Reject configurations that can never admit a request."""
        _check_window(self.limit, self.window)

    def _limiter(self, origin: float, now: float) -> _SlidingLimiter:
        """An empty log."""
        return _SlidingLimiter(self)


HintStyle = Literal["exact", "whole", "header", "none"]
HINT_STYLES: tuple[HintStyle, ...] = ("exact", "whole", "header", "none")
"""How a ``LimitSchedule`` tells its wait: ``exact`` seconds in the body, ``whole``
seconds rounded up in the body, a whole-second ``Retry-After`` header ``header`` only,
or ``none`` (a bare 429)."""

_Step: TypeAlias = "TokenBucket | FixedWindow | SlidingWindow"


@attrs.frozen
class LimitSchedule:
    """A limit that changes over time: ``steps`` of (seconds, policy), the first at 0.

    Time counts from the account's first send (so a benchmark knows the phase of every
    window and change: a fixed window's first window opens with the first send).  At
    each step a fresh limiter of the new policy takes over (a bucket starts full).
    ``hints`` is how the 429 tells its wait (see ``HINT_STYLES``); the steps' own hint
    flags are ignored.  ``from_dict`` builds one from JSON (the server's ``--limit-json``).
    """

    steps: tuple[tuple[float, _Step], ...]
    hints: HintStyle = "exact"

    def __attrs_post_init__(self) -> None:
        """Reject an empty or unordered schedule and unknown hint styles."""
        if not self.steps or self.steps[0][0] != 0:
            raise ValueError("steps must start at 0")
        if not all(math.isfinite(at) for at, _ in self.steps):  # NaN passes the order check
            raise ValueError("steps' times must be finite")
        if any(b[0] <= a[0] for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError("steps must be in increasing time order")
        if self.hints not in HINT_STYLES:
            raise ValueError(f"hints must be one of {HINT_STYLES}")

    @property
    def integer_hints(self) -> bool:
        return self.hints != "exact"

    @property
    def retry_after_header(self) -> bool:
        return self.hints == "header"

    def _limiter(self, origin: float, now: float) -> _ScheduleLimiter:
        """A limiter whose clock starts at the first send."""
        return _ScheduleLimiter(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``from_dict``'s input)."""
        return {
            "hints": self.hints,
            "steps": [
                {"at": at, "kind": type(p).__name__, **attrs.asdict(p)} for at, p in self.steps
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LimitSchedule:
        """Build from ``{"hints": ..., "steps": [{"at", "kind", ...policy fields}]}``."""
        kinds: dict[str, Any] = {
            "TokenBucket": TokenBucket,
            "FixedWindow": FixedWindow,
            "SlidingWindow": SlidingWindow,
        }
        steps: list[tuple[float, _Step]] = []
        for step in data["steps"]:
            fields = {k: v for k, v in step.items() if k not in ("at", "kind")}
            steps.append((float(step["at"]), kinds[step["kind"]](**fields)))
        return cls(tuple(steps), data.get("hints", "exact"))


RateLimit: TypeAlias = "TokenBucket | FixedWindow | SlidingWindow | LimitSchedule"


def hint_parts(limit: RateLimit, wait: float | int) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The 429's details and headers for a wait of ``wait`` seconds under ``limit``."""
    header = {"Retry-After": str(max(1, math.ceil(wait)))}
    if isinstance(limit, LimitSchedule):
        if limit.hints == "header":
            return {"reason": "rate_limited"}, header
        if limit.hints == "none":
            return {"reason": "rate_limited"}, None
        wait = _hint(float(wait), limit.hints == "whole")
    details = {"reason": "rate_limited", "retryAfterSeconds": wait}
    return details, header if limit.retry_after_header else None


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


class _SlidingLimiter:
    """Mutable sliding-window log for one account."""

    __slots__ = ("_integer", "_limit", "_log", "_window")

    def __init__(self, policy: SlidingWindow) -> None:
        self._limit = policy.limit
        self._window = float(policy.window)
        self._integer = policy.integer_hints
        self._log: deque[float] = deque()

    def acquire(self, now: float) -> float | int | None:
        """Log a send and return None, or the wait until the oldest one leaves the window."""
        log = self._log
        while log and log[0] <= now - self._window:
            log.popleft()
        if len(log) < self._limit:
            log.append(now)
            return None
        return _hint(log[0] + self._window - now, self._integer)


class _ScheduleLimiter:
    """Mutable state of a ``LimitSchedule`` for one account: the current step's limiter."""

    __slots__ = ("_index", "_inner", "_start", "_steps")

    def __init__(self, policy: LimitSchedule) -> None:
        self._steps: Sequence[tuple[float, _Step]] = policy.steps
        self._start: float | None = None
        self._index = -1
        self._inner: Any = None

    def acquire(self, now: float) -> float | None:
        """Admit (None) or the exact wait; the schedule's hint style is applied later."""
        if self._start is None:
            self._start = now
        elapsed = now - self._start
        index = self._index
        while index + 1 < len(self._steps) and self._steps[index + 1][0] <= elapsed:
            index += 1
        if index != self._index:
            self._index = index
            at = self._start + self._steps[index][0]
            self._inner = attrs.evolve(self._steps[index][1], integer_hints=False)._limiter(at, at)
        wait: float | None = self._inner.acquire(now)
        if wait is None:
            return None
        if index + 1 < len(self._steps):  # the next step may admit sooner
            wait = min(wait, self._start + self._steps[index + 1][0] - now)
        return max(wait, 1e-6)
