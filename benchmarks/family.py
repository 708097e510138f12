"""The drawn family of server limits (issue 19), and the strict ideal of each draw.

``draw(seed)`` returns one ``Draw``: a limiter kind (token bucket 5-5,000/s with a burst
of 1-100; fixed or sliding window of 5-1,000 per 1-60 s), optionally changing (x0.25-x4
at random times, or flapping between two levels), a hint style (exact, whole seconds,
``Retry-After`` header only, none), 0-200 ms of latency with jitter, and 1-16 processes.
The same seed always gives the same draw, so any draw of any run can be rerun.

``Draw.schedule()`` is the fake server's ``LimitSchedule`` for it; ``ideal()`` the strict
ideal: the earliest time the limiter could have admitted the n-th message (found by
asking the limiter itself, greedily: every admission as early as it allows, so moving
limits are integrated and a window's phase counted), plus one round trip, and never
less than the client's own ceiling, n x latency / in-flight.  (The real benchmark also
takes the max with raw aiohttp against an unlimited server at the same latency.)

``n`` is sized so that a draw lasts ``seconds`` at the ideal (1-3 s in the real
benchmark), so a run of 40 draws takes minutes, not hours.
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from opentrain_async.testing import FixedWindow, LimitSchedule, SlidingWindow, TokenBucket
from opentrain_async.testing._limits import HINT_STYLES, _ScheduleLimiter

__all__ = [
    "KINDS",
    "Draw",
    "admission_times",
    "draw",
    "ideal_from_server_args",
    "strict_ideal",
    "workload",
]

KINDS = ("bucket", "fixed", "sliding")
PER_PROCESS = 16
"""Requests in flight per process when several share one Redis (as benchmarks.processes)."""
SINGLE = 64
"""Requests in flight for a single process (the benchmarks' usual concurrency)."""


@attrs.frozen
class Draw:
    """One drawn server limit and the client's circumstances."""

    seed: int
    kind: str
    rate: float
    """Bucket: tokens per second.  Window: ``limit / window`` (for display)."""
    burst: int
    """Bucket: its capacity.  Window: sends per window (W)."""
    window: float
    """Window: seconds per window (T); 0 for a bucket."""
    changes: tuple[tuple[float, float], ...]
    """(seconds after the first send, multiplier of the base limit) from then on."""
    hints: str
    latency: float
    """Round trip, seconds (mean)."""
    jitter: float
    """Each request's latency varies uniformly by +- this share."""
    processes: int
    n: int
    flapping: bool = False

    @property
    def in_flight(self) -> int:
        return SINGLE if self.processes == 1 else PER_PROCESS * self.processes

    def policy(self, multiplier: float = 1.0) -> TokenBucket | FixedWindow | SlidingWindow:
        """The limiter at ``multiplier`` times the base limit."""
        if self.kind == "bucket":
            return TokenBucket(rate=self.rate * multiplier, burst=self.burst)
        limit = max(1, round(self.burst * multiplier))
        cls = FixedWindow if self.kind == "fixed" else SlidingWindow
        return cls(limit=limit, window=self.window)

    def schedule(self) -> LimitSchedule:
        steps = ((0.0, self.policy()), *((at, self.policy(m)) for at, m in self.changes))
        return LimitSchedule(steps, self.hints)  # type: ignore[arg-type]

    def ideal(self) -> float:
        """The strict ideal (seconds): see the module docstring."""
        admitted = admission_times(self.schedule(), self.n)[-1]
        return max(admitted + self.latency, self.n * self.latency / self.in_flight)

    def parts(self) -> list[str]:
        """The parts of the family this draw belongs to, as the breakdowns name them."""
        return [
            f"kind {self.kind}",
            f"hints {self.hints}",
            f"latency {'0-50' if self.latency < 0.05 else '50-200'} ms",
            "processes 1" if self.processes == 1 else "processes 2-16",
            "moving" if self.changes else "steady",
        ]

    def describe(self) -> str:
        if self.kind == "bucket":
            limit = f"bucket {self.rate:g}/s burst {self.burst}"
        else:
            limit = f"{self.kind} window {self.burst}/{self.window:g}s"
        moves = ""
        if self.changes:
            label = "flaps" if self.flapping else "changes"
            moves = f", {label} " + " ".join(f"x{m:.2f}@{at:.2f}s" for at, m in self.changes[:4])
            if len(self.changes) > 4:
                moves += " ..."
        return (
            f"seed {self.seed}: {limit}{moves}; hints {self.hints}; "
            f"{self.latency * 1000:.0f} ms +-{self.jitter:.0%}; {self.processes} proc; n {self.n}"
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def workload(d: Draw, label: str, conversations: int = 0) -> list[tuple[str, str]]:
    """The draw's ``n`` messages as ``(conversation id, content)``, round robin over
    ``conversations`` (the fake server's ``conv_0001``...; 0: one per message).

    One per message by default: this SDK keeps order within a conversation (one send of
    it on the wire at a time), which the ideal (64 in flight; raw aiohttp, unordered)
    and the peers do not.  Over 50 conversations it could never have more than 50 sends
    on the wire, nor a conversation's m messages sooner than m round trips, whatever its
    pacing: against an unlimited server at 193 ms (seed 999255724's 904 messages) it took
    4.2-4.5 s over 50 conversations, 3.3 s over 1,000, raw aiohttp 2.9-3.0 s."""
    count = conversations or d.n
    return [(f"conv_{i % count + 1:04d}", f"{label} message {i}") for i in range(d.n)]


def admission_times(schedule: LimitSchedule, n: int, until: float | None = None) -> list[float]:
    """When a greedy sender gets each of its first ``n`` messages admitted (seconds from
    the first send), asking the limiter itself: at every refusal it waits exactly the
    limiter's own wait (capped at the next step), so no sender could do better.  With
    ``until``, stops at the first admission after that time."""
    limiter = _ScheduleLimiter(schedule)
    now = 0.0
    times: list[float] = []
    while len(times) < n:
        wait = limiter.acquire(now)
        if wait is None:
            if until is not None and now > until:
                break
            times.append(now)
        else:
            now += wait
    return times


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def draw(
    seed: int,
    *,
    seconds: tuple[float, float] = (1.0, 3.0),
    max_window: float = 60.0,
    max_processes: int = 16,
    max_n: int = 12_000,
    processes: int | None = None,
) -> Draw:
    """One draw of the family from ``seed``; the job lasts ``seconds`` at the ideal
    (drawn in that range), windows last at most ``max_window`` seconds; ``processes``
    sets how many share the limit (issue 19's 16-process goal) and leaves the rest of
    the draw as the seed has it."""
    rng = random.Random(seed)
    kind = rng.choice(KINDS)
    if kind == "bucket":
        rate = round(_log_uniform(rng, 5, 5000), 1)
        burst = round(_log_uniform(rng, 1, 100))
        window = 0.0
    else:
        window = round(_log_uniform(rng, 1, max_window), 2)
        burst = round(_log_uniform(rng, 5, 1000))
        rate = burst / window
    changes: tuple[tuple[float, float], ...] = ()
    flapping = False
    duration = rng.uniform(*seconds)
    if kind != "bucket":  # a window is met only past its first reset: cross 1-3 of them
        duration = max(duration, window * rng.randint(1, 3) + 0.1 * window)
    shape = rng.random()
    if shape < 0.25:  # one change at a random time
        changes = ((round(rng.uniform(0.2, 0.7) * duration, 3), _log_uniform(rng, 0.25, 4)),)
    elif shape < 0.35:  # flapping between the base and another level
        flapping = True
        level = _log_uniform(rng, 0.25, 4)
        period = rng.uniform(0.2, 1.0) * max(window, 0.5)
        at = period
        steps: list[tuple[float, float]] = []
        while at < 3 * duration + 3 * window and len(steps) < 60:
            steps.append((round(at, 3), level if len(steps) % 2 == 0 else 1.0))
            at += period
        changes = tuple(steps)
    hints = rng.choice(HINT_STYLES)
    # A tenth on loopback (no added latency), the rest 0-200 ms.
    latency = 0.0 if rng.random() < 0.1 else round(rng.uniform(0.001, 0.2), 4)
    jitter = round(rng.uniform(0, 0.5), 2) if latency else 0.0
    drawn = 1 if rng.random() < 0.5 or max_processes == 1 else rng.randint(2, max_processes)
    processes = drawn if processes is None else processes
    base = Draw(
        seed, kind, rate, burst, window, changes, hints, latency, jitter, processes, 1, flapping
    )
    # n: what the limiter admits by ``duration``, capped by the client's ceiling.
    n = len(admission_times(base.schedule(), max_n, until=duration))
    ceiling = int(duration * base.in_flight / latency) if latency else max_n
    n = max(2, min(n, ceiling, max_n))
    return attrs.evolve(base, n=n)


def strict_ideal(
    schedule: LimitSchedule, n: int, latency: float = 0.0, in_flight: int = 64
) -> float:
    """The earliest the n-th message could be answered: its admission by the limiter
    (``admission_times``) plus one round trip, never less than n x latency / in-flight."""
    admitted = admission_times(schedule, n)[-1]
    return max(admitted + latency, n * latency / in_flight)


def ideal_from_server_args(args: tuple[str, ...], n: int, in_flight: int = 64) -> float | None:
    """``strict_ideal`` for a fake server started with ``args`` (--rate/--burst,
    --window-limit/--window, --rate-change S:R, --latency); None when unlimited."""
    options: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[arg] = args[i + 1]
    latency = float(options.get("--latency", 0.0))
    burst = int(options.get("--burst", 1))
    if "--rate" in options:
        steps: list[tuple[float, Any]] = [(0.0, TokenBucket(float(options["--rate"]), burst))]
        if "--rate-change" in options:
            at, rate = (float(x) for x in options["--rate-change"].split(":"))
            steps.append((at, TokenBucket(rate, burst)))
    elif "--window-limit" in options:
        window = float(options.get("--window", 1.0))
        steps = [(0.0, FixedWindow(int(options["--window-limit"]), window))]
    else:
        return None
    return strict_ideal(LimitSchedule(tuple(steps)), n, latency, in_flight)
