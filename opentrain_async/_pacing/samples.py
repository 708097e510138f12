"""Accepted-rate samples: what the server accepted, and what was offered to it, per 0.1 s.

Pure functions of (state, now).  A cut uses the accepted rate only when the sender was
actually offering load at the paced rate; a sender that idled (a consumer pause, a
slow input) accepted little because it sent little, which says nothing about the limit.
"""

from __future__ import annotations

import math
from typing import Any

from .state import SAMPLE_BUCKETS, SAMPLE_SECONDS, PacingState, PacingTuning, evolve

_EMPTY = (0,) * SAMPLE_BUCKETS

__all__ = ["accepted_rate", "accepted_since", "first_estimate", "record", "wall_rate"]


def _shifted(state: PacingState, now: float) -> tuple[float, tuple[int, ...], tuple[int, ...]]:
    """(sample_at, accepted, offered) with the buckets shifted so the newest contains ``now``."""
    bucket = math.floor(now / SAMPLE_SECONDS) * SAMPLE_SECONDS
    shift = round((bucket - state.sample_at) / SAMPLE_SECONDS)
    if shift <= 0:
        return state.sample_at, state.accepted, state.offered
    if shift >= SAMPLE_BUCKETS:
        return bucket, _EMPTY, _EMPTY
    pad = (0,) * shift
    return bucket, state.accepted[shift:] + pad, state.offered[shift:] + pad


def _advance(state: PacingState, now: float) -> PacingState:
    """Shift the buckets so the newest one contains ``now``."""
    sample_at, accepted, offered = _shifted(state, now)
    if sample_at == state.sample_at:
        return state
    return evolve(state, sample_at=sample_at, accepted=accepted, offered=offered)


def record(
    state: PacingState, now: float, *, accepted: int = 0, offered: int = 0, **changes: Any
) -> PacingState:
    """Count ``accepted`` successes and ``offered`` slots in the bucket of ``now``, and
    make any other ``changes`` to the state in the same step (one copy per reservation)."""
    if accepted or offered:
        sample_at, counts, slots = _shifted(state, now)
        changes["sample_at"] = sample_at
        changes["accepted"] = (*counts[:-1], counts[-1] + accepted)
        changes["offered"] = (*slots[:-1], slots[-1] + offered)
    return evolve(state, **changes) if changes else state


def accepted_rate(
    state: PacingState, now: float, span: float, since_origin: bool = True
) -> tuple[float, float]:
    """(accepted, offered) per second over the last ``span`` seconds (whole buckets, the
    current one partly); ``since_origin``: not counting time before ``state.origin`` (a
    pause), else pauses and cuts included (what the limiter let through lately)."""
    state = _advance(state, now)
    buckets = max(1, min(SAMPLE_BUCKETS, math.ceil(span / SAMPLE_SECONDS - 1e-9)))
    start = state.sample_at - (buckets - 1) * SAMPLE_SECONDS
    if since_origin:
        if state.origin < now:  # not before the curve's origin (the end of a pause)
            since = math.ceil(round((state.sample_at - state.origin) / SAMPLE_SECONDS, 9)) + 1
            buckets = max(1, min(buckets, since))
        start = max(state.sample_at - (buckets - 1) * SAMPLE_SECONDS, min(state.origin, now))
    elapsed = max(now - start, SAMPLE_SECONDS / 2)
    accepted = sum(state.accepted[-buckets:])
    offered = sum(state.offered[-buckets:])
    return accepted / elapsed, offered / elapsed


def accepted_since(state: PacingState, now: float, start: float) -> tuple[int, float]:
    """(successes, seconds) counted in the sample buckets that began at or after
    ``start`` (whole buckets only: one that began before may hold earlier answers), and
    the seconds from the first of those buckets to ``now``; (0, 0.0) when none began
    yet (the samples hold the last second only)."""
    state = _advance(state, now)
    total = 0
    first = None
    for i, count in enumerate(state.accepted):
        began = _began(state, i)
        if began >= start - 1e-9:
            total += count
            if first is None:
                first = began
    return (0, 0.0) if first is None else (total, now - first)


def first_estimate(
    state: PacingState, now: float, local_rate: float | None, tuning: PacingTuning
) -> float:
    """Where the first 429 starts the search: what got through for every process
    sharing the state (the successes in the samples per second since the first of
    them, so at most the last second: not the whole ramp), or for this process
    (``local_rate``), and at least one request per doubling (a first slot at a crawl
    would hold everyone back for longer than a doubling while the search climbed
    untested).  Computed before the 429's own successes are counted."""
    estimate = max(local_rate or 0.0, 1 / tuning.doubling)
    first = _first_success(state)
    if first is None:
        return estimate
    return max(estimate, sum(state.accepted) / max(now - first, SAMPLE_SECONDS))


def wall_rate(state: PacingState, now: float, reset: float) -> float | None:
    """What a window carries that let the successes in the samples through (at most the
    last second) from the first of them to ``reset``, per second; None: none there."""
    state = _advance(state, now)
    first = _first_success(state)
    if first is None:
        return None
    return sum(state.accepted) / max(reset - first, SAMPLE_SECONDS)


def _began(state: PacingState, i: int) -> float:
    """When sample bucket ``i`` began (the last one at ``sample_at``)."""
    return state.sample_at - (SAMPLE_BUCKETS - 1 - i) * SAMPLE_SECONDS


def _first_success(state: PacingState) -> float | None:
    """When the first sample bucket holding a success began; None: none holds one."""
    for i, count in enumerate(state.accepted):
        if count:
            return _began(state, i)
    return None
