"""The shared window when the server's limit changes under it, and when an answer is
very late: a window that grows, a window that becomes a bucket (whole-second hints or
none), a slow success that lands after a later probe went.

Pacers share one in-memory backend (as processes on Redis do: the agreement test holds
the scripts to the same functions), driven on an injected clock against the fake
server's limiters, every answer immediate unless said.
"""

from __future__ import annotations

import attrs

from opentrain_async._pacing.allowance import ANSWER_WAIT
from opentrain_async.testing import FixedWindow, LimitSchedule, TokenBucket

from .pacing_kit import known_window
from .step_clock import Clock
from .test_pacing_shared_window_hostile import Run, _admit, _pacers, _run


async def test_a_window_that_grows_sends_its_new_w_at_each_reset() -> None:
    """12 per 2 s become 24 at once: the first window's probe gets through and more
    go; from then on each window of the server sees the new W at its reset and one
    refused probe, and W is the new one.  W used to be counted from where the
    accepted probe opened a window early, so it stayed the old one (11): every window
    went in two bursts, with two probes (a round trip more per window far from the
    server; answers here are immediate, so the bursts share one instant)."""
    clock = Clock()
    window = 2.0
    known = known_window(12, window, clock.now, win_size=12)
    backend, pacers = _pacers(clock, known)
    schedule = LimitSchedule(((0.0, FixedWindow(limit=24, window=window)),))
    n = 12 + 24 * 5
    run = await _run(clock, pacers, schedule, window, n)
    assert run.delivered == n
    assert run.per_window()[2:5] == [25, 25, 25]  # W at the reset, then the probe
    assert [run.refused[i] for i in range(2, 5)] == [1, 1, 1]
    assert backend.state.win_size == 24


async def _bucket_run(hints: str, window_first: bool) -> tuple[Run, float]:
    """200 messages into a bucket of 10/s, after a window of 20 per 2 s for 4 s
    (``window_first``) or from the start, known as such: the run and the window hint
    left in the state."""
    clock = Clock()
    first = FixedWindow(limit=20, window=2.0) if window_first else TokenBucket(rate=10)
    steps = ((0.0, first), (4.0, TokenBucket(rate=10)))
    known = known_window(20, 2.0, clock.now)
    if not window_first:
        known = attrs.evolve(known, window_hint=0.0)
    backend, pacers = _pacers(clock, known)
    run = await _run(clock, pacers, LimitSchedule(steps), 2.0, 200, hints=hints, step=0.01)
    assert run.delivered == 200
    return run, backend.state.window_hint


async def test_a_window_become_a_bucket_with_whole_hints_leaves_the_window_mode() -> None:
    """A window of 20 per 2 s becomes a bucket of 10/s whose hints are whole seconds
    (1, rounded up): a window's 429 says when it resets, and these say nothing of the
    kind, so the window's mode is left for the rate.  Only a short exact hint used to
    clear the window: 3 pacers, 200 messages, 331 429s and 27.9 s (ideal 20 s)."""
    run, window_hint = await _bucket_run("whole", window_first=True)
    assert window_hint == 0
    assert sum(run.refused.values()) <= 40
    assert run.elapsed < 24.0  # virtual seconds: the job's length, not a speed


async def test_a_window_become_a_bucket_without_hints_leaves_the_window_mode() -> None:
    """The same bucket giving no hint at all: the window's mode is left, and from then
    on the pacers meet the bucket as pacers that knew it from the start.  (In the
    window's mode, with no reset to open a window, sends went one probe at a time, one
    per round trip: answers here are immediate, so this holds the mode, not the time.)"""
    run, window_hint = await _bucket_run("none", window_first=True)
    assert window_hint == 0
    known, _ = await _bucket_run("none", window_first=False)
    assert sum(run.refused.values()) <= 1.1 * sum(known.refused.values())


async def test_a_success_after_the_second_probe_is_not_taken_for_the_probes() -> None:
    """One send of the window is answered after the second probe went (slower than
    twice ``ANSWER_WAIT``: a process stopped for a moment); the first probe's answer
    was lost (a window of 4 s: both probes in it).  The slow success used to count as
    the second probe's, so a new window
    opened at once and its W went into the full one.  (The second "probe" is the
    share of the answers written off as lost: the slow one and the first probe's.)"""
    clock = Clock()
    w = 24
    _, pacers = _pacers(clock, known_window(w, 4.0, clock.now))
    granted = [(p, at) for p in pacers * w if (at := p.try_acquire()) is not None]
    assert len(granted) == w
    for pacer, at in granted[1:]:
        pacer.on_success(at)
    clock.now += ANSWER_WAIT
    assert _admit(pacers) == 1  # the first probe: its answer is lost
    clock.now += ANSWER_WAIT
    probes = [(p, at) for p in pacers if (at := p.try_acquire()) is not None]
    assert len(probes) == 1  # the second probe
    slow, slow_at = granted[0]
    slow.on_success(slow_at)  # the slow answer of W, after the second probe went
    assert _admit(pacers) <= 1  # the window is full: no new W, one probe at most
    prober, probe_at = probes[0]
    await prober.on_throttle(probe_at, 4.0 - 2 * ANSWER_WAIT)
    assert _admit(pacers) == 0
