"""A one-token bucket, once told (``ArrivalSpread.below``): its lone 429s never cut, and a
very low refused share climbs the curve instead of holding its plateau.

With latency jitter a token bucket of one refuses bunched arrivals at any rate.  Where
the sends were further apart than the spread of their arrivals (spread x rate under
``OVERLAP``), each lone 429 still cut, and the curve then sat on CUBIC's plateau for
two recoveries (3 s after a whole hint's cut): family_sim seed 2574 (2 s family, a
1,382/s bucket of burst 1, 9 ms +-45%) held at 120-140/s for 13 s, 12.17x its ideal.
Virtual time throughout.
"""

from __future__ import annotations

import attrs

from opentrain_async import Pacer, PacingFeedback, PacingState, PacingTuning
from opentrain_async._pacing import apply_report
from opentrain_async._pacing.curve import doubling
from opentrain_async._pacing.spread import (
    CLIMB_SHARE,
    EVIDENCE,
    ONE_TOKEN_OVERLAP,
    OVERLAP,
    UNDER,
    ArrivalSpread,
)
from opentrain_async.testing import FakeTime


def _told(trips: tuple[float, ...] = (0.01, 0.05)) -> ArrivalSpread:
    """A spread that has seen ``EVIDENCE`` lone 429s under the learned limit."""
    spread = ArrivalSpread()
    for _ in range(EVIDENCE):
        for trip in trips * 100:
            spread.answered(trip, accepted=True)
        spread.below(UNDER * 100.0 * 0.99, 100.0)
        spread.answered(0.03, accepted=False)
    for trip in trips * 100:
        spread.answered(trip, accepted=True)
    return spread


def test_a_lone_429_of_a_one_token_bucket_is_the_spreads_below_the_overlap() -> None:
    """Sends 100 ms apart do not overlap a 40 ms spread; a lone 429 among them is still
    the spread's once the limiter looks like one token, and a limit's without that;
    sends a second apart are too far apart for any spread's."""
    told = _told()
    assert ONE_TOKEN_OVERLAP <= told.seconds * 10.0 < OVERLAP
    assert told.explains(10.0)
    assert not told.explains(1.0)
    untold = ArrivalSpread()
    for trip in (0.01, 0.05) * 300:
        untold.answered(trip, accepted=True)
    assert not untold.explains(10.0)  # a bucket with a burst may have refused it


def test_far_needs_the_evidence_and_a_very_low_refused_share() -> None:
    """``far`` (climb) only for a one-token bucket refusing under ``CLIMB_SHARE``."""
    told = _told()
    assert told.refused < CLIMB_SHARE
    assert told.far()
    for _ in range(3):  # a share over CLIMB_SHARE (lone 429s, the evidence kept)
        told.answered(0.03, accepted=False)
        told.answered(0.03, accepted=True)
    assert told.under >= EVIDENCE
    assert told.refused >= CLIMB_SHARE
    assert not told.far()
    untold = ArrivalSpread()
    for trip in (0.01, 0.05) * 300:
        untold.answered(trip, accepted=True)
    assert untold.refused < CLIMB_SHARE
    assert not untold.far()


def test_a_climbing_spread_429_moves_the_curve_into_its_doubling() -> None:
    """In the pure report (and so in the Redis script, held to it by the agreement
    test): counted, no pause, no cut, and a curve on its plateau doubles from now on; a
    curve already doubling, or searching, is left as it was."""
    tuning = PacingTuning()
    state = attrs.evolve(
        PacingState(), limit=100.0, searching=False, origin=10.0, cut_at=10.0, recover=1.5
    )
    feedback = PacingFeedback(throttled=True, throttled_at=11.9, spread=True, climb=True)
    after = apply_report(state, 12.0, feedback, None, tuning)
    assert (after.limit, after.cuts, after.pause_until) == (100.0, 0, state.pause_until)
    assert after.throttles == 1
    assert after.origin == 12.0 - 2 * 1.5
    assert not doubling(state, 12.0, tuning)
    assert doubling(after, 12.1, tuning)
    for doubled in (
        attrs.evolve(state, origin=8.0),  # past two recoveries: doubling already
        attrs.evolve(state, searching=True),
    ):
        assert apply_report(doubled, 12.0, feedback, None, tuning).origin == doubled.origin


async def _answers(pacer: Pacer, time: FakeTime, count: int, trips: tuple[float, ...]) -> None:
    for trip in trips * (count // len(trips)):
        sent = await pacer.acquire()
        time.now += trip
        pacer.on_success(sent)


async def _lone(pacer: Pacer, time: FakeTime) -> None:
    sent = await pacer.acquire()
    time.now += 0.01
    await pacer.on_throttle(sent, None)


async def _one_token_pacer(time: FakeTime, trips: tuple[float, ...]) -> Pacer:
    """A pacer past its search and a cut by a pair of 429s, then ``EVIDENCE`` lone 429s
    on the cut's curve, under its limit (what a bucket with a burst never refuses)."""
    pacer = Pacer(tuning=PacingTuning(doubling=0.01), clock=time.clock, sleep=time.sleep)
    await _answers(pacer, time, 20, trips)
    await pacer.on_throttle(await pacer.acquire(), 0.001)  # the search
    time.now += 0.15
    await _answers(pacer, time, 20, trips)
    await pacer.on_throttle(await pacer.acquire(), 0.001)  # its end
    time.now += 0.01
    await _answers(pacer, time, 200, trips)
    for _ in range(2):  # no evidence yet: a pair cuts
        sent = await pacer.acquire()
        time.now += 0.05
        await pacer.on_throttle(sent, None)
    assert pacer.state.cuts == 3
    time.now = max(time.now, pacer.state.origin)
    for _ in range(EVIDENCE):
        await _answers(pacer, time, 6, trips)
        await _lone(pacer, time)
    assert pacer.spread.under == EVIDENCE
    return pacer


async def test_lone_429s_of_a_one_token_bucket_never_cut() -> None:
    """Round trips of 10-10.5 ms spread arrivals over 0.5 ms, less than the
    gap between sends: before, each lone 429 of a one-token bucket then cut the limit
    (seed 2574: to the rate that drew it, once every 0.5-3 s)."""
    time = FakeTime(start=100.0)
    trips = (0.0100, 0.0105)
    pacer = await _one_token_pacer(time, trips)
    for _ in range(5):  # (the round trips settle: the spread falls to about 0.5 ms)
        await _answers(pacer, time, 12, trips)
        await _lone(pacer, time)
    cuts, limit = pacer.state.cuts, pacer.state.limit
    for _ in range(10):
        await _answers(pacer, time, 12, trips)  # one 429 in 13: too many to climb
        rate = pacer.current_rate()
        assert rate is not None
        assert ONE_TOKEN_OVERLAP <= pacer.spread.seconds * rate < OVERLAP  # no overlap
        assert pacer.spread.one_token()
        assert not pacer.spread.far()
        await _lone(pacer, time)
        assert pacer.pause_remaining() <= 0
    assert (pacer.state.cuts, pacer.state.limit) == (cuts, limit)


async def test_a_one_token_bucket_far_below_its_limit_climbs() -> None:
    """At a refused share under ``CLIMB_SHARE`` a spread's 429 sends the curve into its
    doubling at once: before, it held CUBIC's plateau, near the limit it learned from
    the last cut, for two recoveries."""
    time = FakeTime(start=100.0)
    trips = (0.01, 0.05)
    pacer = await _one_token_pacer(time, trips)
    await _answers(pacer, time, 200, trips)  # the refused share falls under CLIMB_SHARE
    assert pacer.spread.far()
    state = pacer.state
    assert not doubling(state, time.now, pacer.tuning)  # on the plateau
    await _lone(pacer, time)
    assert pacer.state.cuts == state.cuts  # the spread's: no cut
    assert doubling(pacer.state, time.now + 0.001, pacer.tuning)
    later = pacer.current_rate(time.now + 0.1)
    assert later is not None
    assert state.limit is not None
    assert later > 1.5 * state.limit  # within a tenth of a second, well past the limit
