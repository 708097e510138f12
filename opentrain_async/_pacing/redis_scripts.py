"""The shared pacing scripts' contract on the Python side: the arguments each one takes
and what its answer means (the scripts are ``_redis/lua/pacing_*.lua``; each file
opens with its KEYS, ARGV and reply).  A change to one side is a change to both."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .allowance import ANSWER_WAIT
from .backend import Reservation
from .curve import MIN_RATE, NAMED_ROUND_TRIPS, SEARCH_FLOOR
from .episode import BOUND_SPAN, SEARCH_ABOVE, SEARCH_CUTS, WALL_RESET
from .pause import WINDOW_HINT, WINDOW_SLOTS
from .redis_state import decode_state, encode_state, text
from .sounding import FEW, LATE, PROBES
from .state import SAMPLE_BUCKETS, SAMPLE_SECONDS, PacingFeedback, PacingState, PacingTuning

__all__ = [
    "loaded_fields",
    "report_args",
    "reported_state",
    "reservation",
    "reserve_args",
    "store_args",
]


def _arg(value: float | None) -> float | str:
    return "" if value is None else value


def reserve_args(
    tuning: PacingTuning, ttl: float, count: int, successes: int, cap: float | None
) -> list[Any]:
    """ARGV of ``pacing_reserve.lua``."""
    t = tuning
    return [
        SAMPLE_BUCKETS,
        SAMPLE_SECONDS,
        count,
        successes,
        _arg(cap),
        t.beta,
        t.recover,
        t.doubling,
        t.tolerance,
        t.horizon,
        round(ttl * 1000),
        t.idle_after,
        ANSWER_WAIT,
        LATE,
    ]


def reservation(raw: Sequence[Any]) -> Reservation:
    """``pacing_reserve.lua``'s answer; ValueError for a slot that is not a number."""
    rate = text(raw[4])
    until = text(raw[7]) if len(raw) > 7 else ""  # (a script loaded before it said)
    probe_at = text(raw[8]) if len(raw) > 8 else ""
    reserved = Reservation(
        now=float(text(raw[0])),
        first=float(text(raw[1])),
        interval=float(text(raw[2])),
        count=int(raw[3]),
        rate=float(rate) if rate else None,
        cuts=int(raw[5]),
        pause_until=float(text(raw[6])),
        until=float(until) if until else math.inf,
        probe_at=float(probe_at) if probe_at else math.inf,
    )
    numbers = (reserved.first, reserved.interval, reserved.rate or 1.0)
    if not all(math.isfinite(x) for x in numbers) or reserved.interval < 0:
        raise ValueError("the shared state gave a slot that is not a number")
    return reserved


def report_args(
    tuning: PacingTuning, ttl: float, batch: Sequence[tuple[PacingFeedback, float | None]]
) -> list[Any]:
    """ARGV of ``pacing_report.lua``: the tuning, then ten per (feedback, cap)."""
    t = tuning
    args: list[Any] = [
        SAMPLE_BUCKETS,
        SAMPLE_SECONDS,
        t.beta,
        t.recover,
        t.doubling,
        t.max_pause,
        t.max_hint_pause,
        round(ttl * 1000),
        WINDOW_HINT,
        MIN_RATE,
        WINDOW_SLOTS,
        t.recover_round_trips,
        SEARCH_FLOOR,
        BOUND_SPAN,
        SEARCH_CUTS,
        NAMED_ROUND_TRIPS,
        SEARCH_ABOVE,
        WALL_RESET,
        PROBES,
        FEW,
    ]
    for feedback, cap in batch:
        args += [
            feedback.successes,
            "1" if feedback.throttled else "0",
            _arg(feedback.throttled_at),
            _arg(feedback.retry_after),
            _arg(feedback.local_rate),
            _arg(cap),
            ("2" if feedback.climb else "1") if feedback.spread else "0",
            _arg(feedback.latest_accepted),
            "1" if feedback.walled else "0",
            "1" if feedback.sounding else "0",
            _arg(feedback.earliest_accepted),
        ]
    return args


def reported_state(raw: Sequence[Any]) -> tuple[PacingState, float]:
    """``pacing_report.lua``'s answer: the new state (unchecked) and Redis's now."""
    now = float(text(raw[0]))
    flat = [text(x) for x in raw[1]]
    return decode_state(dict(zip(flat[::2], flat[1::2], strict=False))), now


def loaded_fields(raw: Sequence[Any]) -> tuple[dict[str, str], float]:
    """``pacing_load.lua``'s answer: the hash's fields and Redis's now."""
    now = int(raw[0]) + int(raw[1]) / 1e6
    flat = [text(x) for x in raw[2]]
    return dict(zip(flat[::2], flat[1::2], strict=False)), now


def store_args(state: PacingState, ttl: float, version: str = "0") -> list[Any]:
    """ARGV of ``pacing_store.lua``: write ``state`` only if the version is still
    ``version`` ("0": into an empty key)."""
    args: list[Any] = [version, round(ttl * 1000)]
    for name, value in encode_state(state).items():
        args += [name, value]
    return args
