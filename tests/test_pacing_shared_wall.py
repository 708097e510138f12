"""A shut limiter's probe in the shared state (``wall``): one for every pacer.

Pure functions on an injected clock: the state a wall shuts, the one probe it grants
to whichever pacer asks first, its 429, its success, and an answer that never comes.
"""

from __future__ import annotations

from opentrain_async._pacing.allowance import ANSWER_WAIT
from opentrain_async._pacing.backend import apply_report, apply_reserve
from opentrain_async._pacing.probe import WallProbe
from opentrain_async._pacing.state import PacingFeedback, PacingState, PacingTuning

TUNING = PacingTuning()
KNOWN = PacingState(limit=50.0, searching=False, origin=0.0, cuts=2, successes=40)


async def _no_sleep(_: float) -> None:
    return None


def _shut(now: float, wall: float = float("-inf")) -> PacingState:
    feedback = PacingFeedback(throttled=True, throttled_at=now - 0.1, wall=wall)
    return apply_report(KNOWN, now, feedback, None, TUNING)


def test_a_wall_one_pacer_found_holds_every_pacer_to_one_probe() -> None:
    """Three pacers ask at once after the pause: one slot in total; the others are
    told to ask again within a horizon, not given slots of the schedule."""
    state = _shut(10.0)
    assert state.wall_shut
    now = state.pause_until
    grants = []
    for _ in range(3):
        state, reservation = apply_reserve(state, now, 8, 0, None, TUNING)
        grants.append(reservation.count)
    assert grants == [1, 0, 0]
    assert reservation.first == now + 2 * TUNING.horizon


def test_the_probes_429_ends_it_and_its_pause_holds_the_next() -> None:
    state = _shut(10.0)
    now = state.pause_until
    state, probe = apply_reserve(state, now, 1, 0, None, TUNING)
    refused = PacingFeedback(throttled=True, throttled_at=probe.first)
    state = apply_report(state, now + 0.1, refused, None, TUNING)
    assert state.wall_shut
    assert state.wall_probe == float("-inf")
    state, held = apply_reserve(state, now + 0.1, 1, 0, None, TUNING)
    assert held.count == 0
    assert held.first == state.pause_until > now + 0.1
    state, again = apply_reserve(state, state.pause_until, 1, 0, None, TUNING)
    assert again.count == 1


def test_a_success_since_the_probe_lifts_the_wall_for_everyone() -> None:
    state = _shut(10.0)
    now = state.pause_until
    state, _ = apply_reserve(state, now, 1, 0, None, TUNING)
    state, slots = apply_reserve(state, now + 0.1, 8, 1, None, TUNING)  # the probe's success
    assert not state.wall_shut
    assert slots.count >= 1
    assert slots.interval > 0


def test_a_probe_whose_answer_never_comes_is_replaced_after_the_answer_wait() -> None:
    state = _shut(10.0)
    now = state.pause_until
    state, _ = apply_reserve(state, now, 1, 0, None, TUNING)
    state, waiting = apply_reserve(state, now + ANSWER_WAIT - 0.01, 1, 0, None, TUNING)
    assert waiting.count == 0
    state, replaced = apply_reserve(state, now + ANSWER_WAIT, 1, 0, None, TUNING)
    assert replaced.count == 1


def test_no_probe_before_what_the_finding_pacer_learned() -> None:
    """The pacer that found the wall tells when its reset comes at the earliest (its
    ``not_before``): nobody probes before it."""
    state = _shut(10.0, wall=14.0)
    state, early = apply_reserve(state, 12.0, 1, 0, None, TUNING)
    assert early.count == 0
    assert early.first == 14.0
    state, due = apply_reserve(state, 14.0, 1, 0, None, TUNING)
    assert due.count == 1


def test_a_window_mode_is_not_shut_by_a_wall() -> None:
    """A window of seconds probes its own way (``allowance``): a wall reported there
    changes nothing."""
    window = PacingState(limit=5.0, searching=False, cuts=2, window_hint=4.0)
    feedback = PacingFeedback(throttled=True, throttled_at=9.9, wall=float("-inf"))
    assert not apply_report(window, 10.0, feedback, None, TUNING).wall_shut


def test_the_wall_probe_tells_whether_a_429_shuts_before_it_is_reported() -> None:
    """``WallProbe.shuts`` answers before the report what ``refused`` finds after it,
    so the 429 that shuts the limiter carries it to the shared state."""
    probe = WallProbe(lambda: 0.0, _no_sleep)
    assert probe.shuts(1.0, None) is None  # the first: a guessed pause, not shut
    probe.refused(1.0, None, 1.05, counts=True)
    assert probe.shuts(1.01, None) is None  # sent before the guessed pause ended
    assert probe.shuts(1.06, 0.25) is None  # an exact hint says when: no guess
    assert probe.shuts(1.06, None) == float("-inf")  # no wall learned yet
    probe.refused(1.06, None, 1.11, counts=True)
    assert probe.shut
    assert probe.shuts(1.2, None) is None
