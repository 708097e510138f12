"""What a shut limiter's last wall teaches is bounded: one long outage (an hour of 429s
with no hint) must not hold the next wall's first probe back for most of another hour
while the server may well answer again.  Injected clocks only."""

from __future__ import annotations

from opentrain_async import Pacer
from opentrain_async.testing import FakeTime


async def _refuse_until(pacer: Pacer, time: FakeTime, until: float) -> None:
    """Every request refused with no hint until ``until`` (virtual seconds)."""
    while time.clock() < until:
        await pacer.on_throttle(await pacer.acquire(), None)


async def test_an_hour_long_wall_does_not_hold_the_next_probe_back_an_hour() -> None:
    """The last wall's length and period hold the next wall's first probe back, but no
    longer than the longest pause a hint may set (``max_hint_pause``): before, a wall
    shut a minute after an hour-long outage sent nothing for 3,599 s (``send_message``
    asleep in the pacer all that time)."""
    time = FakeTime(start=100.0)
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        pacer.on_success(await pacer.acquire())
    await _refuse_until(pacer, time, 100.0 + 3600)  # an hour's outage
    assert pacer.probe.shut
    pacer.on_success(await pacer.acquire())  # it ends
    assert not pacer.probe.shut
    for _ in range(10):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), None)  # a new wall: a guessed pause
    await pacer.on_throttle(await pacer.acquire(), None)  # refused after it: shut
    assert pacer.probe.shut
    shut_at = time.clock()
    await pacer.acquire()  # the next wall's first probe
    waited = time.clock() - shut_at
    assert waited <= pacer.tuning.max_hint_pause + 1.0, waited
