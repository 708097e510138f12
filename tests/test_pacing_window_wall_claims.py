"""Every refusal of a window's wall claims the one instant its oldest entry leaves: a
429 answered later for a send of the same wall, whose exact hint names the reset the
first one set, says nothing new.  Judged on its own at the rate of the cut its wall had
just made, it read as a bucket's (under ten slots) and left the window's mode: the
curve, cut to what got through, then held the rest of the job well under the window's
rate (seed 7343 of the 2 s family, 15 per 1.13 s: 8.3/s for 4 s, 1.77x).

One pacer on an injected clock, driven call by call (``allowance.same_wall``; its Lua
mirror is held by ``tests/test_pacing_redis.py``).
"""

from __future__ import annotations

import pytest

from opentrain_async._pacing.backend import InMemoryPacingBackend

from .pacing_kit import known_window, paced
from .step_clock import Clock

W, HINT, TRIP = 15, 0.8172, 0.165


def _after_the_walls_first_429(clock: Clock) -> tuple[InMemoryPacingBackend, float]:
    """A window of 15 learned by the wall's first 429, answered now (its hint 0.8172 s,
    32 slots at the 39/s that drew it), which cut the curve to the 8.3/s that got
    through; the reset at now + 0.8172."""
    now = clock.now
    reset = now + HINT
    state = known_window(
        W,
        HINT,
        reset,
        limit=8.3,
        cut_at=reset,
        cuts=3,
        successes=30,
        successes_at_cut=30,
        win_size=W,
        win_base=15,
        win_opened=now - 0.45,
        win_sent=W,
        win_granted=now - 0.45,
        pause_began=now,
    )
    return InMemoryPacingBackend(clock=clock, state=state), reset


async def test_a_later_429_of_the_same_wall_keeps_the_windows_mode() -> None:
    """The wall's next 429, 5 ms later, for a send admitted before the pause began: its
    hint (0.8126 s, 6.7 slots at 8.3/s) claims the same reset.  The window's mode stays,
    and at the reset all of W goes at once, not one send per 0.12 s."""
    clock = Clock()
    backend, reset = _after_the_walls_first_429(clock)
    pacer = paced(clock, backend)
    sent = clock.now - TRIP
    clock.now += 0.005
    await pacer.on_throttle(sent, reset - clock.now - 0.0004)
    state = backend.state
    assert state.window_hint == HINT  # still a window
    assert state.pause_until == pytest.approx(reset)
    clock.now = reset
    granted = [pacer.try_acquire() for _ in range(W)]
    assert None not in granted  # W at the reset, at once


async def test_a_short_hint_that_claims_another_instant_still_leaves_the_mode() -> None:
    """A hint claiming a slot a third of a second before the reset (a bucket's next
    token, say) is no refusal of that wall: judged as before, under ten slots at the
    pace, it leaves the window's mode."""
    clock = Clock()
    backend, reset = _after_the_walls_first_429(clock)
    pacer = paced(clock, backend)
    sent = clock.now - TRIP
    clock.now += 0.005
    await pacer.on_throttle(sent, reset - clock.now - 0.35 + 1e-7)
    assert backend.state.window_hint == 0.0
