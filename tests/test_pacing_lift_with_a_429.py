"""A wall's lift and a 429 in one report: the 429 counts, after the lift.

A lift (``WallProbe._lifted``) is reported with the pacer's next report; on a shared
backend the success that lifted the wall schedules a flush, and a 429 answered before
that flush went takes the lift along (``Pacer._timed``): "a wall that lifts for one
request and shuts again at once".  ``apply_report`` cut for the 429, then lifted: the
curve below the lift's rate was raised to it, as if the 429 had never come (a curve
at 20/s, a lift of 30/s and a 429 in one report: 30/s after, against 27/s for the
lift then the 429).  Now the lift comes first when a 429 rides with it, in
``apply_report`` and in ``pacing_report.lua`` alike.  (Failed on main.)
"""

from __future__ import annotations

import attrs
import redis.asyncio as redis_asyncio

from opentrain_async import PacingTuning
from opentrain_async._pacing.backend import apply_report
from opentrain_async._pacing.curve import lift, rate
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .pacing_kit import lua_report_agrees
from .test_pacing_redis import redis_now

TUNING = PacingTuning()


def _curve(now: float) -> PacingState:
    """A curve at 20/s, a second into its 3 s recovery (about 19.4/s now), with
    successes since its last cut (a 429 now is a new episode's: it cuts)."""
    return PacingState(
        limit=20.0,
        searching=False,
        origin=now - 1.0,
        cut_at=now - 1.0,
        cuts=2,
        recover=3.0,
        successes=500,
    )


def _refused_with_a_lift(now: float) -> PacingFeedback:
    return PacingFeedback(0, throttled=True, throttled_at=now - 0.05, lifted=30.0)


def test_a_429_reported_with_a_lift_cuts_from_the_lifted_curve() -> None:
    now = 100.0
    before = _curve(now)
    feedback = _refused_with_a_lift(now)
    got = apply_report(before, now, feedback, None, TUNING)
    lifted_first = lift(before, now, 30.0, TUNING)
    want = apply_report(lifted_first, now, attrs.evolve(feedback, lifted=0.0), None, TUNING)
    assert (got.limit, got.origin, got.cuts) == (want.limit, want.origin, want.cuts)
    assert got.cuts == before.cuts + 1
    after = rate(got, now + 0.01, TUNING)
    assert after is not None
    assert after < 0.95 * 30.0  # main: 30.0, the cut undone


async def test_the_script_lifts_before_a_429_as_python_does(redis: redis_asyncio.Redis) -> None:
    """``pacing_report.lua`` agrees, with the 429 and with a success alone."""
    for throttled in (True, False):
        now = await redis_now(redis)
        feedback = _refused_with_a_lift(now)
        if not throttled:
            feedback = PacingFeedback(1, latest_accepted=now - 0.05, lifted=30.0)
        got, _ = await lua_report_agrees(redis, "lift-429", _curve(now), feedback)
        assert got.limit is not None
        assert (got.limit < 30.0) is throttled  # the cut from 30, or the plateau at 30
