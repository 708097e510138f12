"""The search after the first 429 doubles at most once per round trip (pure functions)."""

from __future__ import annotations

import pytest

from opentrain_async import PacingFeedback, PacingState, PacingTuning
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.curve import rate


def test_the_search_doubles_at_most_once_per_round_trip() -> None:
    """The first 429's round trip sets the search's doubling period: each doubling is
    heard of before the next (at 0.3 s, doubling per 0.1 s sent eight times the rate
    that drew the next 429 before its answer came)."""
    tuning = PacingTuning()
    state = PacingState(accepted=(0,) * 9 + (10,), sample_at=9.9)
    after = apply_report(
        state, 10.0, PacingFeedback(throttled=True, throttled_at=9.7), None, tuning
    )
    assert after.searching
    assert after.limit is not None
    at = rate(after, after.origin + 0.3, tuning)
    assert at == pytest.approx(2 * after.limit)
    short = apply_report(
        state, 10.0, PacingFeedback(throttled=True, throttled_at=9.99), None, tuning
    )
    assert short.limit is not None
    assert rate(short, short.origin + 0.3, tuning) == pytest.approx(8 * short.limit)
