"""Accepted-rate samples: what the server accepted, and what was offered to it, per 0.1 s.

Pure functions of (state, now).  A cut uses the accepted rate only when the sender was
actually offering load at the paced rate; a sender that idled (a consumer pause, a
slow input) accepted little because it sent little, which says nothing about the limit.
"""

from __future__ import annotations

import math

import attrs

from .state import SAMPLE_BUCKETS, SAMPLE_SECONDS, PacingState

__all__ = ["accepted_rate", "record"]


def _advance(state: PacingState, now: float) -> PacingState:
    """Shift the buckets so the newest one contains ``now``."""
    bucket = math.floor(now / SAMPLE_SECONDS) * SAMPLE_SECONDS
    shift = round((bucket - state.sample_at) / SAMPLE_SECONDS)
    if shift <= 0:
        return state
    if shift >= SAMPLE_BUCKETS:
        empty = (0,) * SAMPLE_BUCKETS
        return attrs.evolve(state, sample_at=bucket, accepted=empty, offered=empty)
    pad = (0,) * shift
    return attrs.evolve(
        state,
        sample_at=bucket,
        accepted=state.accepted[shift:] + pad,
        offered=state.offered[shift:] + pad,
    )


def record(state: PacingState, now: float, *, accepted: int = 0, offered: int = 0) -> PacingState:
    """Count ``accepted`` successes and ``offered`` slots in the bucket of ``now``."""
    if not accepted and not offered:
        return state
    state = _advance(state, now)
    return attrs.evolve(
        state,
        accepted=(*state.accepted[:-1], state.accepted[-1] + accepted),
        offered=(*state.offered[:-1], state.offered[-1] + offered),
    )


def accepted_rate(state: PacingState, now: float, span: float) -> tuple[float, float]:
    """(accepted, offered) per second over the last ``span`` seconds (whole buckets, the
    current one partly), not counting time before ``state.origin`` (a pause)."""
    state = _advance(state, now)
    buckets = max(1, min(SAMPLE_BUCKETS, math.ceil(span / SAMPLE_SECONDS - 1e-9)))
    if state.origin < now:  # not before the curve's origin (the end of a pause)
        since = math.ceil(round((state.sample_at - state.origin) / SAMPLE_SECONDS, 9)) + 1
        buckets = max(1, min(buckets, since))
    start = max(state.sample_at - (buckets - 1) * SAMPLE_SECONDS, min(state.origin, now))
    elapsed = max(now - start, SAMPLE_SECONDS / 2)
    accepted = sum(state.accepted[-buckets:])
    offered = sum(state.offered[-buckets:])
    return accepted / elapsed, offered / elapsed
