"""A 429's exact pause does not cost the slots the pacer drops: resume at its end.

The pacer holds the slots of one reservation (those due within ``horizon``) and drops
them when a 429 pauses it (they were reserved into the pause).  When the hint says when
the limiter reopens, the schedule must resume at the pause's end: had it gone on after
the dropped slots, each such 429 left a gap of up to a horizon with nothing sent, and
the accepted rate the next cut read fell with it (an untuned client 100 ms from a bucket
of 300/s learned 237-266/s and ran there for the rest of the job).  In virtual time: the
pacer's clock and sleeps are the loop's.
"""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import InMemoryPacingBackend, Pacer, PacingState

RATE = 360.0
HINT = 0.001
WAITING = 8


async def _admissions_around_a_short_pause() -> tuple[float, float, list[float]]:
    """(the first admission, the 429's pause end, the later admissions) for WAITING
    senders paced at RATE, whose first request draws a 429 with an exact hint of HINT
    seconds in the same episode (no success since the last cut: a pause, no cut)."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    state = PacingState(
        limit=RATE, searching=False, origin=now - 100.0, recover=100.0, cuts=2, tat=now
    )
    backend = InMemoryPacingBackend(clock=loop.time, state=state)
    pacer = Pacer(backend=backend, clock=loop.time, sleep=asyncio.sleep)
    await pacer.acquire()  # paced from here on
    tasks = [asyncio.ensure_future(pacer.acquire()) for _ in range(WAITING)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    first = min(task.result() for task in done)
    await pacer.on_throttle(first, HINT)
    pause_end = backend.state.pause_until
    later = await asyncio.gather(*pending)
    return first, pause_end, sorted(later)


def _run() -> tuple[float, float, list[float]]:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_admissions_around_a_short_pause())
    finally:
        loop.close()


def test_the_schedule_resumes_at_the_end_of_a_short_pause() -> None:
    """The next request starts when the pause ends (and not before), not after the
    slots the pacer held for the others waiting when the 429 came (7 at 360/s within
    the 20 ms horizon), and the rest follow at the rate."""
    first, pause_end, later = _run()
    assert pause_end == pytest.approx(first + HINT, abs=1e-6)
    assert later[0] >= pause_end - 1e-9
    assert later[0] <= pause_end + 1.5 / RATE
    assert later[-1] - later[0] <= (len(later) - 1 + 0.5) / RATE


def test_only_a_pause_on_a_hint_that_says_gives_slots_back_nobody_followed() -> None:
    """A rounded hint (or none) pauses on a guess, the short pause: the slots after it
    stay where they were, as backoff.  Slots someone reserved after the dropped ones
    (``tat`` past their end) are theirs: the schedule does not go back under them."""
    held = PacingState(
        limit=RATE,
        searching=False,
        origin=0.0,
        recover=100.0,
        cuts=2,
        tat=10.02,
        pause_until=10.0 + HINT,
    )
    for hint, end, tat in (
        (HINT, 10.02, 10.0 + HINT),  # exact: back to the pause's end
        (1.0, 10.02, 10.02),  # rounded: the gap stays
        (None, 10.02, 10.02),  # none: the gap stays
        (HINT, 10.01, 10.02),  # another sender's slots follow ours: theirs stay
    ):
        backend = InMemoryPacingBackend(state=held, clock=lambda: 10.0)
        backend.give_back(10.0, end, hint)
        assert backend.state.tat == pytest.approx(tat)
