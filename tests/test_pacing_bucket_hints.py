"""A token bucket's exact hints bound its rate: ``rate <= 1 / hint``.

The fake server's bucket refuses with the wait for its next token, ``(1 - tokens) /
rate``, at most one slot, so the longest exact hint since the last cut (``hint_max``)
names the rate nearly, unless the limiter let through more than that lately (a sliding
window's hint, the wait for its oldest slot, looks the same).
"""

from __future__ import annotations

from opentrain_async import PacingFeedback, PacingState
from opentrain_async import PacingTuning as Tuning
from opentrain_async._pacing import apply_report
from opentrain_async._pacing.backend import current_rate
from opentrain_async._pacing.samples import record

T = Tuning()


def throttled(sent: float, hint: float) -> PacingFeedback:
    return PacingFeedback(throttled=True, throttled_at=sent, retry_after=hint)


def slow_start(successes: int, end: float) -> PacingState:
    """What slow start got through before the first 429: ``successes`` spread over the
    0.3 s before ``end``."""
    state = PacingState(successes=successes)
    for i in range(3):
        state = record(state, end - 0.25 + i * 0.1, accepted=successes // 3)
    return state


def test_a_volley_of_bucket_hints_ends_the_search_near_the_rate() -> None:
    """A 200/s bucket met by slow start's bunches (90 in 0.4 s: a search from 225/s):
    its first refusal came as a token nearly refilled (a loose bound: the search goes
    on), the next ones right after it emptied (hints of nearly 5 ms): the search ends
    at 1 / 4.9 ms, and the curve starts there, not ``beta`` below."""
    state = slow_start(successes=90, end=1.0)
    now = 1.1
    state = apply_report(state, now, throttled(1.0, 0.0002), None, T)
    assert state.searching
    assert state.limit is not None
    assert state.limit > 210
    for i, hint in enumerate((0.003, 0.0049, 0.004)):
        state = apply_report(state, now + 0.001 * (i + 1), throttled(1.0, hint), None, T)
    assert not state.searching
    assert state.limit is not None
    assert 200 <= state.limit <= 1 / 0.0049 + 1e-9
    assert current_rate(state, now + 0.05, T) >= 0.99 * state.limit


def test_a_sliding_windows_short_hints_after_a_long_one_bound_nothing() -> None:
    """A sliding window of 20 per second: a long hint (its oldest slot 0.8 s away), then
    short ones as slots free one by one.  The longest hint since the cut bounds the rate
    at 1.25/s, below what the window let through: it is no bucket's, the search goes on."""
    state = slow_start(successes=21, end=1.0)
    state = apply_report(state, 1.1, throttled(1.0, 0.8), None, T)
    searching = state
    for i, hint in enumerate((0.012, 0.0199, 0.015)):
        state = apply_report(state, 1.9 + 0.001 * i, throttled(1.85, hint), None, T)
    assert state.searching
    assert state.limit == searching.limit
