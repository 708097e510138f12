"""The wall probe after an outage, whatever order its walls lifted in (one pacer's
``WallProbe``, its calls made by hand in the order Python 3.12's event loop made them).

Found by branch ``wallbound2`` (2026-12-07): round3's rounded-second bound (eaa70f0) was
reverted because ``tests/test_pacing_outage_hints.py`` read a 13.1 s gap after an outage
on Python 3.12 and 3.13, not 3.10 or 3.11.  Traced, two flaws of the probe itself, on
main as well, which only that task order reached:

- the outage learned as a window's period: ``_lifted`` forgets a period longer than two
  walls' resets were apart, but forgetting also forgot that gap, so when the last wall
  before the outage was itself a forgetting lift, the outage's lift had one gap to judge
  by (its own, 17 s) and kept a period of 15.7 s;
- the next wall's requests slept until its ``not_before`` (13.5 s ahead) in
  ``WallProbe.gate`` even after a request sent before the wall shut was admitted and
  lifted it: nothing woke them (now the lift does, ``WallProbe._opened``).
"""

from __future__ import annotations

import asyncio

import pytest

from opentrain_async._pacing.probe import WallProbe


def _wall(probe: WallProbe, refused: list[float], lift: float) -> None:
    """A wall of rounded 1 s hints: the first refusal guesses a 50 ms pause, the later
    ones (sent after it) shut the limiter; a request admitted at ``lift`` gets through."""
    first = refused[0]
    probe.refused(first, 1.0, first + 0.05, counts=True)
    for at in refused[1:]:
        probe.refused(at, 1.0, at + 0.1, counts=True)
    assert probe.shut
    probe.accepted(lift)
    assert not probe.shut


def _before_the_outage(probe: WallProbe) -> None:
    """A fixed window of 10 per 1 s: three walls, the third lift forgetting the period
    the second learned over a skipped reset (the order 3.12 ran them in)."""
    probe.first_send = 0.0
    _wall(probe, [0.5, 0.6], lift=1.0)  # period 0.6 (from the first send)
    _wall(probe, [2.3, 2.8], lift=3.05)  # period 1.8 (two resets), gap 2.45: kept
    assert probe.period == pytest.approx(1.8)
    _wall(probe, [3.6, 3.9], lift=4.2)  # gap 4.2 - 2.8 = 1.4 < 1.8: forgotten
    assert probe.period == 0.0


def test_an_outage_after_a_forgotten_period_is_no_window() -> None:
    """An outage of 15 s right after a wall whose lift forgot the period: the outage's
    lift learns 15.7 s (from the last lift, 4.2, to its last refusal, 19.9), longer
    than the 1.4 s two resets were apart before it, so it is no window's period.  The
    next ordinary wall's probe goes at once.  On main 53e7e5a the gap was forgotten
    with the period, the outage's period kept, and the next wall's probe held back to
    35.6 s (min(19.9 + 15.7, 21.6 + 14.9)): 13 s with nothing sent."""
    now = [0.0]
    probe = WallProbe(lambda: now[0], asyncio.sleep)
    _before_the_outage(probe)
    _wall(probe, [5.0, *(float(t) + 0.9 for t in range(5, 20))], lift=21.0)
    assert probe.period == 0.0
    probe.refused(21.6, 1.0, 21.65, counts=True)  # the next ordinary wall
    probe.refused(21.8, 1.0, 21.9, counts=True)
    assert probe.shut
    now[0] = 22.0
    assert probe.admit(lambda: now[0]) == 22.0  # its probe goes: not held to 35.6 s


async def test_a_wall_lifted_by_an_earlier_request_wakes_the_held_probe() -> None:
    """A wall shut with its probe held back (``not_before`` ahead, from a period
    learned), then a request sent before it shut comes back admitted: the wall lifted.
    Every request waiting in ``gate`` goes on at once.  On main 53e7e5a they slept out
    the whole hold (13.5 s after the outage above): the sleep heard no answer."""
    now = [100.0]
    slept: list[float] = []
    never = asyncio.get_running_loop().create_future()

    async def sleep(seconds: float) -> None:  # virtual time that does not pass
        slept.append(seconds)
        await never

    async def acquire() -> float:
        return now[0]

    probe = WallProbe(lambda: now[0], sleep)
    probe.first_send = 90.0
    probe.shut, probe.not_before = True, 110.0  # held back 10 s
    probe._guess_ended = 99.9  # (the wall's first guessed pause)
    waiting = [asyncio.ensure_future(probe.gate(acquire, lambda grow: None)) for _ in range(3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert slept  # held back
    assert not any(task.done() for task in waiting)
    probe.accepted(99.95)  # sent after the guess, before it shut: admitted
    assert not probe.shut
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(task.done() for task in waiting)
    assert [task.result() for task in waiting] == [100.0] * 3
    never.cancel()
