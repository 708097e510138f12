"""The accepted rate a cut reads counts only what came after the curve's origin.

Successes are kept per 0.1 s bucket; the origin (the end of a pause) falls inside one.
That bucket also holds the answers that came before the origin (the burst that drew
the 429), and counting it whole over the time since the origin read the limiter's rate
high, so the cut learned a limit above it and drew 429s again.  Pure functions of
(state, now): the clock is the argument.
"""

from __future__ import annotations

import attrs
import pytest

from opentrain_async import PacingFeedback, PacingState
from opentrain_async import PacingTuning as Tuning
from opentrain_async._pacing import apply_report
from opentrain_async._pacing.samples import accepted_rate, record

T = Tuning()
ORIGIN = 1.095
"""The end of the pause: 5 ms before its sample bucket (1.0-1.1) ends."""
NOW = 1.205


def after_a_pause(limit: float = 150.0) -> PacingState:
    """A paced state whose pause ended at ``ORIGIN``: the burst before it answered 30
    times in the origin's bucket, then the limiter admitted 100/s (one every 0.01 s, of
    3 offered) until ``NOW``."""
    state = attrs.evolve(
        PacingState(), limit=limit, searching=False, origin=ORIGIN, cut_at=ORIGIN, successes=30
    )
    state = record(state, 1.01, accepted=30, offered=30)
    for k in range(11):  # 1.095, 1.105, ..., 1.195
        state = record(state, ORIGIN + k / 100, accepted=1, offered=3, successes=31 + k)
    return state


def test_the_origins_bucket_counts_only_its_share_after_the_origin() -> None:
    """11 admitted in the 0.11 s since the origin (100/s): read near that, not with the
    30 answers before the origin added (373/s)."""
    accepted, offered = accepted_rate(after_a_pause(), NOW, 0.25)
    assert accepted == pytest.approx(100.0, rel=0.1)
    assert offered == pytest.approx(300.0, rel=0.1)
    # Pauses included (the bucket bound's check): every bucket whole, as before.
    whole = accepted_rate(after_a_pause(), NOW, 0.25, since_origin=False)[0]
    assert whole == pytest.approx(41 / (NOW - 1.0))


def test_a_cut_just_after_a_pause_learns_the_rate_admitted_since() -> None:
    """A 429 0.1 s after the pause: the cut's limit is what the limiter admitted since
    (about 100/s), not the rate that drew the 429 (the curve's, near 150/s) because the
    burst's answers made the accepted rate look higher than that."""
    feedback = PacingFeedback(throttled=True, throttled_at=1.195)
    after = apply_report(after_a_pause(), NOW, feedback, None, T)
    assert after.cuts == 1
    assert after.limit is not None
    assert after.limit <= 1.15 * 100.0
