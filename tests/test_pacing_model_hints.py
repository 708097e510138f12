"""What a 429 without a usable hint does to the pacer: it pauses like a rounded one.

Before, a bare 429 (no body hint, no header) or a hint of 0 set no pause at all, so
every request in flight and every retry ran straight into the same limit.  Injected
clocks: nothing here waits."""

from __future__ import annotations

import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.pause import on_hint
from opentrain_async._pacing.state import PacingState, PacingTuning
from opentrain_async.testing import FakeTime


@pytest.mark.parametrize("hint", [None, 0.0, -1.0])
def test_no_hint_pauses_like_a_rounded_second(hint: float | None) -> None:
    tuning = PacingTuning()
    rounded = on_hint(PacingState(), 10.0, 9.9, 1.0, tuning)
    bare = on_hint(PacingState(), 10.0, 9.9, hint, tuning)
    assert bare.pause_until == rounded.pause_until == pytest.approx(10.0 + tuning.max_pause)


def test_bare_429s_back_to_back_double_the_pause() -> None:
    """Each 429 for a request sent after the current pause began doubles it, as with a
    rounded hint; one from the same burst (sent before the pause) does not."""
    tuning = PacingTuning()
    state = on_hint(PacingState(), 10.0, 9.99, None, tuning)
    same_burst = on_hint(state, 10.001, 9.98, None, tuning)
    assert same_burst.streak == state.streak == 1
    assert same_burst.pause_until == pytest.approx(10.001 + tuning.max_pause)  # not doubled
    later = on_hint(state, 10.06, 10.055, None, tuning)
    assert later.pause_until == pytest.approx(10.06 + 2 * tuning.max_pause)


async def test_a_pacer_holds_requests_after_a_bare_429() -> None:
    """Through the Pacer: after a 429 with no hint, the next admission waits out the
    pause (on the injected clock), where it used to be immediate."""
    time = FakeTime()
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    sent = await pacer.acquire()
    await pacer.on_throttle(sent, None)
    before = time.clock()
    await pacer.acquire()
    assert time.clock() - before >= PacingTuning().max_pause - 1e-9
