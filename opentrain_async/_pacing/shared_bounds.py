"""Bounds on the shared pacing state: what no pacer writes is not obeyed.

A corrupt hash in Redis (``HSET limit 1e-06``, a schedule an hour ahead) would hold
every sender back for good; the Redis backend checks each answer here and, outside the
bounds, paces locally (see ``redis_backend``).
"""

from __future__ import annotations

import math

from .curve import MIN_RATE
from .state import PacingTuning

__all__ = ["UnusableSharedState", "check_shared_state", "longest_ahead"]


class UnusableSharedState(ValueError):
    """The shared hash holds what no pacer writes (corrupted by hand, or by another
    program): this process paces locally until the key is valid again or expires."""


def longest_ahead(tuning: PacingTuning) -> float:
    """Seconds ahead of Redis's now that a valid schedule or pause can reach: the
    longest hint pause, one slot at the slowest rate, and the horizon and tolerance."""
    slowest = MIN_RATE * tuning.beta
    return tuning.max_hint_pause + 1.0 + 1.0 / slowest + tuning.horizon + tuning.tolerance


def check_shared_state(
    tuning: PacingTuning,
    now: float,
    *,
    limit: float | None = None,
    rate: float | None = None,
    ahead: tuple[float, ...] = (),
    window_hint: float = 0.0,
) -> None:
    """Raise ``UnusableSharedState`` unless the shared values are ones a pacer would
    write: a learned ``limit`` of at least ``MIN_RATE``; an uncapped ``rate`` of at
    least the slowest the curve gives (``MIN_RATE * beta``); and no time in ``ahead``
    (the schedule, the pause) further from ``now`` than ``longest_ahead``; a
    ``window_hint`` no longer than the longest hint pause (a pacer caps every hint
    there).  A corrupt hash (``limit 1e-06``, ``tat = now + 3600``) would otherwise
    hold every sender back for good (``window_hint 1e9``: a curve that never climbs
    back, ``recover`` being three hints)."""
    if limit is not None and not MIN_RATE * (1 - 1e-9) <= limit < math.inf:
        raise UnusableSharedState(f"a limit of {limit!r}/s (the least learned is {MIN_RATE})")
    slowest = MIN_RATE * tuning.beta
    if rate is not None and not slowest * (1 - 1e-9) <= rate < math.inf:
        raise UnusableSharedState(f"a rate of {rate!r}/s (the slowest paced is {slowest:g})")
    if not 0 <= window_hint <= tuning.max_hint_pause:
        raise UnusableSharedState(
            f"a window of {window_hint!r} s (at most {tuning.max_hint_pause:g} s is valid)"
        )
    bound = longest_ahead(tuning)
    for at in ahead:
        if not at - now <= bound:
            raise UnusableSharedState(
                f"a schedule or pause {at - now:.6g} s ahead (at most {bound:g} s is valid)"
            )
