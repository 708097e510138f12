"""A window's spread after the backend's clock went back (a Redis failover to a replica
whose clock is behind): W's sends still go, at once, as before the spread.

The window opened (``win_opened``) on the old clock, now ahead of the new one.  Spread
from it, every send of W was due ahead of now by as much as the clock went back: 100 s
back held them all for 100 s (past ``longest_ahead``: the state refused as unusable).
A window that says it opened more than a horizon ahead of now is not spread: W goes at
once, as it did before the spread (and as a grant stamped ahead of now is taken stale).
"""

from __future__ import annotations

import pytest

from opentrain_async._pacing.backend import apply_reserve
from opentrain_async._pacing.state import PacingState, PacingTuning

from .pacing_kit import opened_window

W, HINT, STRETCH = 10, 1.0, 0.5


def opened_ahead(now: float, back: float, sent: int) -> PacingState:
    """A window of W per HINT that opened ``back`` seconds ahead of ``now`` (the clock
    went back that much since), ``sent`` of W gone, spread over STRETCH."""
    return opened_window(W, HINT, now + back, sent, pause_until=now, win_stretch=STRETCH)


@pytest.mark.parametrize("back", [5.0, 100.0])
@pytest.mark.parametrize("sent", [0, 3])
def test_a_window_opened_ahead_of_now_sends_at_once(back: float, sent: int) -> None:
    now = 1000.0
    _, got = apply_reserve(opened_ahead(now, back, sent), now, 4, 0, None, PacingTuning())
    assert got.count == 4
    assert got.first == now


def test_a_window_opened_within_a_horizon_ahead_is_spread() -> None:
    """(A reset a horizon ahead is a pause's end, not a clock gone back: spread.)"""
    now, tuning = 1000.0, PacingTuning()
    state = opened_ahead(now, tuning.horizon / 2, 3)
    _, got = apply_reserve(state, now, 4, 0, None, tuning)
    assert got.first == pytest.approx(state.win_opened + STRETCH * 3 / W)
