"""A window's whole-second hint: its pause ends at the sure part, probes find the reset.

A hint rounded up to whole seconds, h, says the window resets in (h - 1, h] s.  Waited
in full, every window costs up to a second more than it lasts: a sliding window of 785
per 1.27 s answering "2" was sent every 2 s (``benchmarks.family_timeline 240``:
1.66x the strict ideal).  Past the sure part (all but ``SURE`` of the hint) one probe
at a time goes, and the window's W goes at once when one gets through.

Driven by hand on an injected clock: a window of 5 per 4 s met twice (the second time
in the window's mode), answering whole-second hints.  Nothing here sleeps.
"""

from __future__ import annotations

from opentrain_async import Pacer
from opentrain_async._pacing.allowance import SURE

from .step_clock import Clock

W = 5


def _admit_all(pacer: Pacer) -> list[float]:
    admitted = []
    while (at := pacer.try_acquire()) is not None:
        admitted.append(at)
        if len(admitted) > 50:
            break
    return admitted


async def _in_the_windows_mode(pacer: Pacer, clock: Clock) -> None:
    """Slow start fills the first window, a whole hint of 4 s says it is a window of
    seconds, and at its reset W go at once and the next 429 is a window's."""
    for _ in range(W):
        at = await pacer.acquire()
        pacer.on_success(at)
        clock.now += 0.01
    await pacer.on_throttle(await pacer.acquire(), 4.0)
    assert pacer.state.window_hint == 4.0
    assert pacer.pause_remaining() == 4.0  # the first window: its hint in full
    clock.now += 4.0
    burst = _admit_all(pacer)
    assert len(burst) == W
    for at in burst:
        pacer.on_success(at)


async def test_a_windows_whole_hint_pauses_for_its_sure_part_then_probes() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    await _in_the_windows_mode(pacer, clock)
    refused = pacer.try_acquire()  # the probe past W
    assert refused is not None
    await pacer.on_throttle(refused, 3.0)  # the window resets in (2, 3] s
    assert pacer.pause_remaining() == 3.0 - SURE  # not 3 s: the sure part only
    clock.now += 3.0 - SURE
    probe = pacer.try_acquire()
    assert probe is not None
    assert pacer.try_acquire() is None  # one probe at a time, not the window's W
    await pacer.on_throttle(probe, 1.0)  # not yet
    assert 0 < pacer.pause_remaining() < 1.0  # a short pause, then the next probe
    clock.now += pacer.pause_remaining()
    probe = pacer.try_acquire()
    assert probe is not None
    assert pacer.try_acquire() is None
    pacer.on_success(probe)  # the window reset: the rest of its W at once
    assert len(_admit_all(pacer)) == W - 1  # (the probe was its first)


async def test_no_answer_yet_means_no_second_probe() -> None:
    """A probe still out holds the others back: a second one would only be refused
    too, or take a slot of the window's W before it is known to have reset."""
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    await _in_the_windows_mode(pacer, clock)
    await pacer.on_throttle(pacer.try_acquire() or 0.0, 2.0)
    clock.now += 2.0 - SURE
    assert pacer.try_acquire() is not None
    clock.now += 0.1
    assert pacer.try_acquire() is None
    assert pacer.state.win_reset > clock.now  # the reset the hint allows is still ahead


async def test_at_the_hints_end_the_window_opens_without_a_probe_through() -> None:
    """The hint's whole length is a bound: by then the window has reset whatever the
    probes said (a probe lost to an error holds nothing back past it)."""
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    await _in_the_windows_mode(pacer, clock)
    await pacer.on_throttle(pacer.try_acquire() or 0.0, 2.0)
    clock.now += 2.0 - SURE
    probe = pacer.try_acquire()
    assert probe is not None
    pacer.on_error(probe)
    clock.now += SURE
    assert len(_admit_all(pacer)) == W
