"""A wall's 429 with a rounded hint: its cut reads the rate of the window behind it.

A fixed window of W per T lets W through at once, then refuses every request until its
reset, with hints rounded up to whole seconds (``whole``, or the ``Retry-After`` header
alone).  A request sent after the guessed short pause and refused too is the wall's
(``probe.WallProbe.walled``): the rate that drew it says nothing of the limit, as the
wall refuses any rate, and the cut read half of it (15 processes on 48 per 1.09 s
crawled at 10-12/s for 4 s after the wall lifted).  The backend on an injected clock,
report by report (``episode.wall_cut``).
"""

from __future__ import annotations

import attrs

from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.probe import WallProbe
from opentrain_async._pacing.state import PacingFeedback, PacingState

from .step_clock import Clock

W = 48


def _after_the_burst(clock: Clock) -> InMemoryPacingBackend:
    """W accepted in the first 0.2 s, 3 of them reported, then the wall's first 429
    (the first cut: a search from what was reported, and a guessed pause)."""
    backend = InMemoryPacingBackend(clock=clock)
    start = clock.now
    clock.now = start + 0.22
    backend.report_now(PacingFeedback(successes=3, latest_accepted=start + 0.1))
    clock.now = start + 0.25
    backend.report_now(
        PacingFeedback(throttled=True, throttled_at=start + 0.12, retry_after=1.0, local_rate=14)
    )
    assert backend.state.searching
    return backend


def _walls_429(
    backend: InMemoryPacingBackend, clock: Clock, start: float, **kw: object
) -> PacingState:
    """A request sent just after the guessed pause (0.32 s), refused at 0.62 s with a
    hint of 1 s (the burst's other answers reported with it)."""
    clock.now = start + 0.62
    return backend.report_now(
        PacingFeedback(
            successes=W - 3,
            throttled=True,
            throttled_at=start + 0.32,
            latest_accepted=start + 0.1,
            **kw,  # type: ignore[arg-type]
        )
    )


def test_a_walls_rounded_hint_cuts_to_the_windows_rate() -> None:
    """The wall's 429 ends the search at about W per second (W through from the first
    success to the middle of the second its hint names, 0.92 s), not at the rate the
    search drew it at (33/s: no more was offered, so nothing says the limit is above)."""
    clock = Clock()
    start = clock.now
    walled = _walls_429(_after_the_burst(clock), clock, start, retry_after=1.0, walled=True)
    clock.now = start
    plain = _walls_429(_after_the_burst(clock), clock, start, retry_after=1.0)
    assert not walled.searching
    assert plain.limit is not None
    assert plain.limit < 35
    assert walled.limit is not None
    assert 50 <= walled.limit <= 55  # W / 0.92 s
    assert walled.cuts == plain.cuts  # a cut all the same: one per episode


def test_a_wall_with_no_hint_is_cut_as_before() -> None:
    """With no hint nothing bounds the wall's reset: the cut is the usual one (the
    wall only counted as seen, ``walls``: the quiet probe's gate)."""
    clock = Clock()
    start = clock.now
    walled = _walls_429(_after_the_burst(clock), clock, start, walled=True)
    clock.now = start
    plain = _walls_429(_after_the_burst(clock), clock, start)
    assert walled == attrs.evolve(plain, walls=plain.walls + 1)


def test_the_probe_tells_the_walls_refusals() -> None:
    """The first 429 after a success is a guess's (not the wall's); a refusal for a
    request sent after the guessed pause is the wall's (it shuts the limiter), and so is
    its probe's; a hint that says when the limiter reopens is never a wall's."""
    clock = Clock()
    probe = WallProbe(clock, clock.sleep)
    probe.accepted(100.0)
    assert not probe.walled(100.1, 1.0)
    probe.refused(100.1, 1.0, paused_until=100.15, counts=True)
    assert not probe.walled(100.12, 1.0)  # sent before the pause ended: the burst's
    assert probe.walled(100.2, 1.0)
    assert probe.walled(100.2, None)
    assert not probe.walled(100.2, 0.25)  # exact: says when
    assert not probe.walled(100.2, 2.0)  # a window's whole seconds
    probe.refused(100.2, 1.0, paused_until=100.3, counts=True)
    assert probe.shut
    assert probe.walled(100.4, 1.0)
    probe.accepted(100.5)
    assert not probe.walled(100.6, 1.0)  # lifted: a new guess first
