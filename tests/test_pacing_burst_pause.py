"""A cut's burst does not stretch its guessed pause (pure functions, no clock).

Past the search, the 429s of requests sent before the current pause began were sent at
the rate just cut: the cut answers them.  Each used to push the short pause to its own
answer plus ``max_pause``, so a round trip of such answers held every request back for
that round trip (a 127/s bucket 150 ms away sat idle 0.2 s per episode).
"""

from __future__ import annotations

import pytest

from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.pause import on_hint
from opentrain_async._pacing.state import PacingFeedback, PacingState, PacingTuning

T = PacingTuning()
PAUSED = PacingState(
    limit=100.0, searching=False, pause_began=10.0, pause_until=10.05, streak=1, cuts=2
)


@pytest.mark.parametrize("hint", [1.0, None, 0.0])
def test_a_burst_429_past_the_search_keeps_the_pause(hint: float | None) -> None:
    after = on_hint(PAUSED, 10.12, 9.97, hint, T)
    assert after.pause_until == PAUSED.pause_until
    assert after.streak == PAUSED.streak


def test_a_429_sent_after_the_pause_began_still_extends_and_doubles() -> None:
    after = on_hint(PAUSED, 10.12, 10.06, 1.0, T)
    assert after.streak == 2
    assert after.pause_until == pytest.approx(10.12 + 2 * T.max_pause)


def test_an_exact_hint_is_waited_out_even_for_the_burst() -> None:
    after = on_hint(PAUSED, 10.12, 9.97, 0.3, T)
    assert after.pause_until == pytest.approx(10.42)


def test_the_first_contact_still_extends_the_pause_while_searching() -> None:
    """The search's slow sends would meet a bucket the first burst still drains."""
    searching = PacingState(limit=10.0, searching=True, pause_began=10.0, pause_until=10.05)
    after = on_hint(searching, 10.12, 9.97, 1.0, T)
    assert after.pause_until == pytest.approx(10.12 + T.max_pause)


def test_a_cuts_burst_through_apply_report_leaves_the_pause_alone() -> None:
    """One cut, then the rest of its round trip's 429s: one short pause in all."""
    state = PacingState(
        limit=100.0,
        searching=False,
        origin=0.0,
        recover=1.0,
        cut_at=0.0,
        cuts=2,
        successes=50,
        successes_at_cut=10,
    )
    state = apply_report(
        state, 5.0, PacingFeedback(throttled=True, throttled_at=4.85, retry_after=1.0), None, T
    )
    assert state.cuts == 3
    paused = state.pause_until
    assert paused == pytest.approx(5.0 + T.max_pause)
    for i in range(1, 20):  # requests admitted 4.85-4.99, answered over the next 150 ms
        feedback = PacingFeedback(throttled=True, throttled_at=4.85 + i * 0.007, retry_after=1.0)
        state = apply_report(state, 5.0 + i * 0.007, feedback, None, T)
    assert state.pause_until == paused
    assert state.cuts == 3
