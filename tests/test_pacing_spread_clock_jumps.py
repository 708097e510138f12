"""The arrival spread survives a backend whose clock is replaced mid-flight.

A request admitted on Redis's clock (seconds since 1970) and answered after the pacer
switched to a backend on its monotonic clock (Redis lost at start, then back) has a
"round trip" of about -1.8e9 s, or +1.8e9 s the other way.  Counted, one such answer
made the spread 2e8 s for hundreds of answers: every lone 429 looked like the spread's
(no pause, no cut)."""

from __future__ import annotations

import pytest

from opentrain_async._pacing.spread import ArrivalSpread


@pytest.mark.parametrize("jump", [1.8e9, -1.8e9])
def test_a_round_trip_no_network_takes_is_not_counted(jump: float) -> None:
    spread = ArrivalSpread()
    for trip in (0.03, 0.05) * 20:
        spread.answered(trip, accepted=True)
    before = spread.seconds
    assert 0.0 < before < 0.05
    spread.answered(jump, accepted=False)
    assert spread.seconds == before
    assert not spread.last_ok  # still a 429: the next lone one is the limit's
