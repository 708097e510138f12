"""After a hint-less wall lifts, the pacer sends as the last window's slots free: its W
successes replayed in the shape they were admitted in (a sliding window frees each
slot a period after it was taken), then one probe alone.
Before, the pace resumed at once and met the window still full.  Injected clocks only."""

from __future__ import annotations

from opentrain_async import Pacer
from opentrain_async.testing import FakeTime


async def _window_then_wall(
    pacer: Pacer, time: FakeTime, gaps: list[float]
) -> tuple[float, list[float]]:
    """Successes admitted ``gaps`` apart (the last window), then 429s with no hint
    until the limiter is shut and its probe lifts it; returns the lift's admission and
    the successes'."""
    admitted = []
    for gap in gaps:
        admitted.append(await pacer.acquire())
        pacer.on_success(admitted[-1])
        await time.sleep(gap)
    while not pacer.probe.shut:
        await pacer.on_throttle(await pacer.acquire(), None)
    await time.sleep(1.0)  # the window's period passes: the probe finds it reopened
    lift = await pacer.acquire()
    pacer.on_success(lift)
    assert not pacer.probe.shut
    return lift, admitted


async def test_a_lifted_wall_sends_in_the_last_windows_shape() -> None:
    """Eight successes, four at once and four 0.1 s apart: after the lift the release
    goes in that shape (none before its slot frees; the pace may hold it longer), and
    past it the limiter is shut: one probe goes, nobody else until an answer."""
    time = FakeTime(start=100.0)
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    lift, admitted = await _window_then_wall(pacer, time, [0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0])
    offsets = [at - admitted[0] for at in admitted]
    assert offsets[-1] > 0.3
    released = []
    for offset in offsets[1:]:
        released.append(await pacer.acquire())
        assert time.clock() >= lift + offset - 1e-9, (time.clock() - lift, offset)
    assert pacer.probe.shut  # the last window's successes went: shut past them
    await pacer.acquire()  # the probe
    assert pacer.try_acquire() is None  # alone
    for at in released:
        pacer.on_success(at)
    assert not pacer.probe.shut  # the release's last answer: room, the pace again


async def test_a_refused_release_hands_back_to_the_pace() -> None:
    """A release's send refused says the limiter is not the last window's (a bucket, a
    limit that fell): the release ends and a 429 is handled as any other."""
    time = FakeTime(start=100.0)
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    await _window_then_wall(pacer, time, [0.1] * 8)
    at = await pacer.acquire()
    await pacer.on_throttle(at, None)
    assert not pacer.probe.gating
