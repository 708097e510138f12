"""The fallback's local pacing runs on the shared side's clock as last heard.

A shared backend's times are on its own clock (Redis ``TIME``: seconds since 1970), and
a pacer only ever turns them into durations with the offset of its last reservation.
Were the local backend on this process's monotonic clock, the switch would jump by the
clocks' difference: a 429 answered locally would pause for minus 56 years (its hint
lost), one answered by Redis after local pacing for 1.8e9 s (a bogus WARNING), and
round trips of requests in flight would wreck the arrival spread."""

from __future__ import annotations

from collections.abc import Callable

from opentrain_async._pacing import PacingFeedback, PacingState
from opentrain_async._pacing.fallback import PacingFallback
from opentrain_async.testing import FakeTime

from .pacing_kit import Switch

EPOCH = 1.8e9  # the shared side's clock: Redis TIME, seconds since 1970


class _FarClock(Switch):
    """A shared store on a clock ``EPOCH`` ahead of ours; fails while ``down``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock=lambda: clock() + EPOCH)


async def test_local_pacing_continues_the_shared_clock() -> None:
    """Reservations before and during the outage are on one clock, and a 429's pause
    set locally ends its hint after the shared side's now."""
    time = FakeTime(start=100.0)
    store = _FarClock(time.clock)
    fallback = PacingFallback(store, where="w", retry_every=60.0, clock=time.clock)
    shared = await fallback.reserve(1)
    assert shared.now == EPOCH + 100.0
    store.down = True
    time.now += 1.0
    local = await fallback.reserve(1)
    assert not fallback.shared
    assert abs(local.now - (shared.now + 1.0)) < 1e-6
    state = await fallback.report(
        PacingFeedback(throttled=True, throttled_at=local.now, retry_after=0.5)
    )
    assert abs(state.pause_until - (local.now + 0.5)) < 1e-6


async def test_the_state_handed_back_on_rejoin_is_on_the_local_clock() -> None:
    """``rejoin`` gets the local state on this process's clock (as it did before the
    shift), so a hand-back moves it to the shared clock once, not twice."""
    time = FakeTime(start=100.0)
    store = _FarClock(time.clock)
    handed: list[PacingState] = []

    async def rejoin(local: PacingState) -> None:
        handed.append(local)

    fallback = PacingFallback(store, where="w", retry_every=1.0, clock=time.clock, rejoin=rejoin)
    await fallback.reserve(1)
    store.down = True
    await fallback.reserve(1)
    await fallback.report(PacingFeedback(throttled=True, throttled_at=None, retry_after=0.5))
    time.now += 2.0
    await fallback.reserve(1)  # starts the probe
    assert fallback.probe is not None
    await fallback.probe
    [local] = handed
    assert abs(local.pause_until - 100.5) < 1e-6
