"""A shut limiter (429s with no hint that outlast the pacer's guessed pause): one probe at
a time, and a next wall's first probe no sooner than the last wall taught.  Injected
clocks only."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.probe import WallProbe
from opentrain_async.testing import FakeTime


async def shut(time: FakeTime) -> Pacer:
    """A pacer whose limiter shut: successes, a 429 with no hint (a guessed pause),
    then a request admitted after that pause refused too."""
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), None)
    paused = pacer.pause_remaining()
    assert paused > 0
    after = await pacer.acquire()  # waits the short pause out
    await pacer.on_throttle(after, None)
    assert pacer.probe.shut
    return pacer


async def test_a_shut_limiter_gets_one_probe_at_a_time() -> None:
    """While shut, the pause's end admits one request and nobody else starts until its
    answer, however long: before, every pause end sent a round trip's worth of requests
    at the pace into it.  The probe's success reopens the pace."""
    time = FakeTime(start=100.0)
    pacer = await shut(time)
    probe = await pacer.acquire()
    others = [asyncio.ensure_future(pacer.acquire()) for _ in range(5)]
    await time.sleep(3.0)  # virtual seconds pass: nobody else is admitted
    assert pacer.try_acquire() is None
    assert not any(task.done() for task in others)
    await pacer.on_throttle(probe, None)  # refused: the next probe, one only
    await time.sleep(3.0)
    assert sum(task.done() for task in others) == 1
    second = next(task for task in others if task.done()).result()
    pacer.on_success(second)  # accepted: the limiter admits again, everyone goes
    await asyncio.wait_for(asyncio.gather(*others), 1.0)
    assert not pacer.probe.shut


async def test_a_cancelled_probe_hands_the_turn_on() -> None:
    """A request cancelled while waiting to be the probe does not hold the others back."""
    time = FakeTime(start=100.0)
    pacer = await shut(time)
    first = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await time.sleep(3.0)
    assert second.done()


async def test_a_429_with_its_hint_does_not_shut() -> None:
    """An exact hint says when the limiter reopens: its pause is no guess, and two 429s
    in a row there leave the pace alone (the cut answers them)."""
    time = FakeTime(start=100.0)
    pacer = Pacer(clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), 0.05)
    await pacer.on_throttle(await pacer.acquire(), 0.05)
    assert not pacer.probe.shut


def test_the_next_wall_waits_as_long_as_the_last_held() -> None:
    """A wall that lifted teaches its length and a lower bound of the period; the next
    wall's first probe goes no sooner than the earlier of the last reset plus the period
    and its own start plus the last wall's length (a window's resets are periodic; a
    bucket's walls are short, so they stay short)."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    probe = WallProbe(lambda: now[0], sleep)
    probe.first_send = 0.0
    probe.refused(1.0, None, 1.05, counts=True)  # the window filled at 1 s
    probe.refused(1.1, None, 1.2, counts=True)  # after the guessed pause: shut
    assert probe.shut
    assert probe.not_before == float("-inf")  # no wall seen yet: nothing learned
    probe.refused(9.5, None, 9.6, counts=True)  # probes refused until 9.5 ...
    probe.accepted(10.0)  # ... and the reset came by 10.0
    assert not probe.shut
    assert probe.period == pytest.approx(9.5)  # the reset came after 9.5 from the first send
    probe.refused(11.0, None, 11.05, counts=True)  # the next window filled at 11 s
    probe.refused(11.1, None, 11.2, counts=True)
    assert probe.shut
    # min(9.5 + 9.5, 11.0 + (9.5 - 1.0)): the last wall held 8.5 s
    assert probe.not_before == pytest.approx(19.0)
    now[0] = 12.0
    assert probe.admit(lambda: now[0]) is None  # too early for the probe


def test_the_guess_is_the_first_pause_not_its_extensions() -> None:
    """The 429s of requests sent before a guessed pause come back one by one, each
    extending it a little; a request sent after the first pause's end and refused shuts
    the limiter all the same (before, each extension moved the mark past it, and a
    window that stayed shut drew a round trip's worth after every pause).  The arrival
    spread's 429 (``counts=False``) is no evidence either way."""
    probe = WallProbe(lambda: 0.0, _no_sleep)
    probe.refused(1.00, None, 1.05, counts=True)  # the first: a guessed pause to 1.05
    probe.refused(1.01, None, 1.06, counts=True)  # sent before it: extends it
    probe.refused(1.02, None, 1.07, counts=False)  # the spread's
    assert not probe.shut
    probe.refused(1.055, None, 1.11, counts=True)  # sent after 1.05, refused
    assert probe.shut


async def test_the_probe_is_the_first_request_the_pace_admits() -> None:
    """While shut, the probe is whichever waiting request gets its slot first, not the
    first to ask: requests queued for later slots would each spend one before it."""
    time = FakeTime(start=100.0)
    probe = WallProbe(time.clock, time.sleep)
    probe.shut = True
    given_back: list[bool] = []

    def slot_at(at: float) -> Callable[[], Awaitable[float]]:
        async def acquire() -> float:
            await time.sleep(at - time.now)
            return time.now

        return acquire

    late = asyncio.ensure_future(probe.gate(slot_at(100.5), given_back.append))  # asks first
    early = asyncio.ensure_future(probe.gate(slot_at(100.1), given_back.append))
    await time.sleep(1.0)
    assert early.done()  # asked second, admitted first: the probe
    assert early.result() == pytest.approx(100.1)
    assert not late.done()  # its slot came while the probe was out: given back, waiting
    assert given_back == [False]
    late.cancel()


async def _no_sleep(seconds: float) -> None:
    """A sleep that returns at once (nothing here waits)."""


def test_a_period_longer_than_two_resets_apart_is_forgotten() -> None:
    """Walls whose resets came a second apart, then an outage of 15 s: the period the
    outage would teach (from the last lift before it to its last refusal) is longer
    than two resets were apart, so it is no window's, and the next wall's first probe
    is not held back by it (a limiter that refused everything for a while, then 10/s
    with hints of 1 s: 13 s with nothing sent, ``tests/test_pacing_outage_hints.py``)."""
    now = [0.0]
    probe = WallProbe(lambda: now[0], _no_sleep)
    probe.accepted(0.0)
    for second in range(1, 5):  # a wall each second, lifting at its reset
        probe.refused(second - 0.5, 1, second - 0.45, True)
        probe.refused(second - 0.4, 1, second - 0.2, True)  # after the guess: shut
        assert probe.shut
        probe.accepted(second + 0.01)
    assert 0 < probe.period < 2
    probe.refused(5.0, 1, 5.05, True)  # the outage: refused until 19.9
    probe.refused(19.9, 1, 20.0, True)
    probe.accepted(20.01)
    assert probe.period == 0.0  # 15 s: no window's, since resets came a second apart
    now[0] = 21.0
    probe.refused(21.0, 1, 21.05, True)
    probe.refused(21.1, 1, 21.3, True)
    assert probe.shut
    assert probe.not_before <= 21.3  # the short pause's, not a learned 15 s
