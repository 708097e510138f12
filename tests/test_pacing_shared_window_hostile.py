"""The shared window against a long job, a server that changes, a corrupt state, and
users who give up: the promises of ``allowance`` that other tests take for granted.

Pacers share one in-memory backend (as clients of one process do, and processes on
Redis, whose scripts the agreement test holds to the same functions), driven on an
injected clock against the fake server's own limiters, every answer immediate: the
server counts what each of its windows saw.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import attrs

from opentrain_async import Pacer
from opentrain_async._pacing.allowance import ANSWER_WAIT
from opentrain_async._pacing.backend import InMemoryPacingBackend, Reservation
from opentrain_async._pacing.state import PacingFeedback, PacingState
from opentrain_async.testing import FixedWindow, LimitSchedule, TokenBucket
from opentrain_async.testing._limits import _hint, _ScheduleLimiter

from .pacing_kit import known_window, paced
from .step_clock import Clock

PACERS = 3


@attrs.define
class Run:
    """What the server saw: sends and 429s per window of ``window`` seconds from the
    first send, and when the last message was delivered."""

    window: float
    sends: Counter[int] = attrs.Factory(Counter)
    refused: Counter[int] = attrs.Factory(Counter)
    delivered: int = 0
    elapsed: float = 0.0

    def per_window(self) -> list[int]:
        return [self.sends[i] for i in range(max(self.sends) + 1)]


async def _run(
    clock: Clock,
    pacers: list[Pacer],
    schedule: LimitSchedule,
    window: float,
    n: int,
    hints: str = "exact",
    until: float = 120.0,
    step: float = 0.005,
) -> Run:
    """Send ``n`` messages through ``pacers`` (taking turns) into the server's limiter;
    a 429 is answered at once with the ``hints`` the server gives: "exact", "whole"
    (rounded up) or "none"; ``step`` seconds pass whenever no pacer may send."""
    limiter = _ScheduleLimiter(schedule)
    run = Run(window)
    start = clock.now
    while run.delivered < n and clock.now < start + until:
        progress = False
        for pacer in pacers:
            at = pacer.try_acquire() if run.delivered < n else None
            if at is None:
                continue
            progress = True
            index = math.floor((clock.now - start) / window)
            run.sends[index] += 1
            wait = limiter.acquire(clock.now)
            if wait is None:
                pacer.on_success(at)
                run.delivered += 1
            else:
                run.refused[index] += 1
                hint = None if hints == "none" else _hint(wait, hints == "whole")
                await pacer.on_throttle(at, hint)
        if not progress:
            clock.now += step
    run.elapsed = clock.now - start
    return run


def _pacers(clock: Clock, state: PacingState) -> tuple[InMemoryPacingBackend, list[Pacer]]:
    backend = InMemoryPacingBackend(clock=clock, state=state)
    pacers = [paced(clock, backend) for _ in range(PACERS)]
    return backend, pacers


async def test_a_long_job_keeps_sending_w_at_every_reset() -> None:
    """Each window's probe draws one 429: expected, not a lower limit.  It used to cut
    the learned limit by ``beta`` each time, until the exact hint (the window's 2 s)
    looked short at the cut rate (fewer than ten slots) and the window's mode was
    dropped for the rate schedule at half the speed (after eight windows of 20 per 2 s)."""
    clock = Clock()
    w, window, windows = 20, 2.0, 16
    backend, pacers = _pacers(clock, known_window(w, window, clock.now))
    schedule = LimitSchedule(((0.0, FixedWindow(limit=w, window=window)),))
    run = await _run(clock, pacers, schedule, window, windows * w)
    assert run.delivered == windows * w
    # W then the probe, each; the first wall, refused at the reset's instant, is told
    # exactly 2 s, which reads as a rounded hint: two probes sound it (``sounding``)
    assert run.per_window() == [w + 3] + [w + 1] * (windows - 2) + [w]
    assert backend.state.window_hint > 0
    assert backend.state.win_size == w
    assert backend.state.limit is not None
    assert backend.state.limit >= w / window


async def test_a_window_that_grows_and_shrinks_gets_its_new_w_each_window() -> None:
    """The limit flaps between 24 and 12 per 2 s every two windows: a window that grew
    lets the probe through and opens again at once, one that shrank refuses the burst
    past its W once; either way each window of the server sees its W and one refused
    probe, and the job takes the windows it needs (exact hints)."""
    clock = Clock()
    window = 2.0
    big, small = FixedWindow(limit=24, window=window), FixedWindow(limit=12, window=window)
    steps = ((0.0, big), (4.0, small), (8.0, big), (12.0, small), (16.0, big))
    _, pacers = _pacers(clock, known_window(24, window, clock.now))
    limits = [24, 24, 12, 12, 24, 24, 12, 12, 24, 24]
    n = sum(limits) + 8
    run = await _run(clock, pacers, LimitSchedule(steps), window, n)
    assert run.delivered == n
    sounded = [2] + [0] * (len(limits) - 1)  # the first wall's exact 2 s, sounded (above)
    assert run.per_window()[:-1] == [w + 1 + k for w, k in zip(limits, sounded, strict=True)]
    assert all(run.refused[i] == 1 + sounded[i] for i in range(len(limits)))
    assert run.elapsed < len(limits) * window + 0.1


async def test_a_window_replaced_by_a_bucket_leaves_the_window_mode() -> None:
    """The server's window becomes a bucket of 10/s: its first exact hint of one slot
    (0.1 s) ends the window's mode.  The hint is judged at the curve's rate, which a
    window's 429 restarts at the limit: with no restart the curve, set aside in the
    window's mode, climbed without bound, every short hint looked like a window's and
    the pacers kept bursting W into the bucket (162 429s for 200 messages)."""
    clock = Clock()
    window = 2.0
    steps = ((0.0, FixedWindow(limit=20, window=window)), (4.0, TokenBucket(rate=10)))
    backend, pacers = _pacers(clock, known_window(20, window, clock.now))
    run = await _run(clock, pacers, LimitSchedule(steps), window, 60)
    assert run.delivered == 60
    assert backend.state.window_hint == 0
    assert run.refused[2] <= 6  # the window's burst into the bucket, once


async def test_a_grant_stamped_ahead_of_the_clock_holds_the_probe_at_most_answer_wait() -> None:
    """A Redis failed over to a replica whose clock is an hour behind (or a hash edited
    by hand) holds a window's last grant an hour "ahead": an answer missing then held
    the probe back until that hour had passed, for every process (the reservation
    only said "ask again within a horizon", so no bound on the state caught it)."""
    clock = Clock()
    w, window = 20, 2.0
    stale = attrs.evolve(
        known_window(w, window, clock.now),
        successes=2 * w - 1,  # the window's W granted, one answer lost
        win_size=w,
        win_opened=clock.now - 0.5,
        win_base=w,
        win_sent=w,
        win_granted=clock.now + 3600,
        win_reset=clock.now - 0.5,
    )
    _, pacers = _pacers(clock, stale)
    clock.now += ANSWER_WAIT
    assert _admit(pacers) == 1  # the probe, for all of them


def _admit(pacers: list[Pacer]) -> int:
    """How many sends the pacers admit now, taking turns."""
    admitted = 0
    progress = True
    while progress and admitted < 100:
        progress = False
        for pacer in pacers:
            if pacer.try_acquire() is not None:
                admitted += 1
                progress = True
    return admitted


class _FrozenReports:
    """A shared backend whose success reports never come back (a Redis frozen with
    ``fail_closed``, or a custom backend that hangs): reservations still answer."""

    def __init__(self, inner: InMemoryPacingBackend) -> None:
        self.inner = inner
        self.tuning = inner.tuning
        self.closed = False

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        return await self.inner.reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        await asyncio.Event().wait()  # never
        raise AssertionError("unreachable")

    async def load(self) -> PacingState:
        return self.inner.state

    async def aclose(self) -> None:
        self.closed = True

    def attach(self, key: str, on_fallback: object) -> None:
        pass


async def test_close_does_not_hang_on_a_success_report_that_never_lands() -> None:
    """In a window's mode successes are reported at once, in the background, and the
    client's close waits for them; a backend that never answers (Redis frozen, or
    down with ``fail_closed``) made close wait for ever.  It waits ``ANSWER_WAIT`` at
    most (on the pacer's clock), then closes the backend."""
    from opentrain_async import OpenTrainClient

    clock = Clock()
    inner = InMemoryPacingBackend(clock=clock, state=known_window(20, 2.0, clock.now))
    backend = _FrozenReports(inner)
    pacer = Pacer(backend=backend, clock=clock, sleep=clock.sleep)
    client = OpenTrainClient("ot_test_token", "http://127.0.0.1:9", pacer=pacer)
    sent_at = await pacer.acquire()
    pacer.on_success(sent_at)  # its report goes in the background, and hangs
    await asyncio.wait_for(client.close(), 10)  # a hang, not a speed: never taken
    assert backend.closed


class _SlowReserve:
    """A shared backend (as Redis is: a round trip per call) whose reservations wait
    for the test to let them through."""

    def __init__(self, inner: InMemoryPacingBackend) -> None:
        self.inner = inner
        self.tuning = inner.tuning
        self.gate = asyncio.Event()
        self.gate.set()

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        if count > 1:  # a leader's for the queue
            await self.gate.wait()
        return await self.inner.reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        return await self.inner.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        return self.inner.state

    async def aclose(self) -> None:
        pass

    def attach(self, key: str, on_fallback: object) -> None:
        pass


async def test_slots_of_callers_who_gave_up_are_not_sent_into_a_later_window() -> None:
    """Three sends wait in one process; its leader asks for three of the window's slots
    and, while the answer is on its way, two callers give up (``wait_for``, a bulk send
    left early).  The two slots it was granted are never answered: the probe goes
    ``ANSWER_WAIT`` later, for another process, and its 429 pauses everyone to the
    next reset.  The slots used to be kept (a window's slot is never dropped as late),
    so the process's next send went at once, into the pause: one more 429, past W."""
    clock = Clock()
    w = 3
    reset = clock.now + 0.5
    known = known_window(w, 2.0, clock.now, pause_until=reset, win_reset=reset)
    inner = InMemoryPacingBackend(clock=clock, state=known)
    slow = _SlowReserve(inner)

    async def turn(seconds: float) -> None:  # the clock's sleep, letting others run
        clock.now += max(seconds, 0.0)
        await asyncio.sleep(0)

    giving_up = Pacer(backend=slow, clock=clock, sleep=turn)
    giving_up._become_paced()
    other = paced(clock, inner)
    slow.gate.clear()
    callers = [asyncio.ensure_future(giving_up.acquire()) for _ in range(w)]
    for _ in range(5):  # all three queue; the leader, past the pause, asks for three
        await asyncio.sleep(0)
    for caller in callers[1:]:
        caller.cancel()
    await asyncio.gather(*callers[1:], return_exceptions=True)
    slow.gate.set()
    giving_up.on_success(await callers[0])
    for _ in range(3):  # its report (in the background) lands
        await asyncio.sleep(0)
    assert inner.state.win_sent == w
    assert other.try_acquire() is None  # two answers missing
    clock.now += ANSWER_WAIT
    probe = other.try_acquire()
    assert probe is not None
    await other.on_throttle(probe, 1.0 - ANSWER_WAIT + 0.5)  # exact: the next reset
    assert giving_up.try_acquire() is None  # not into the pause


async def test_an_answer_later_than_answer_wait_is_not_taken_for_the_probes() -> None:
    """One send of the window is answered slowly (a server's slow request, a process
    stopped for a moment), so its probe goes ``ANSWER_WAIT`` after the grant.  The
    slow success then lands while the probe is still out: it used to count as the
    probe's ("a success since the probe went"), so a new window opened at once and
    its W went into the full one (W more 429s).  A success counts as the probe's only
    past the answers still missing when it went."""
    clock = Clock()
    w = 24
    _, pacers = _pacers(clock, known_window(w, 2.0, clock.now))
    granted = []
    for pacer in pacers * w:
        at = pacer.try_acquire()
        if at is not None:
            granted.append((pacer, at))
    assert len(granted) == w
    for pacer, at in granted[1:]:
        pacer.on_success(at)
    clock.now += ANSWER_WAIT
    [(prober, probe_at)] = [(p, at) for p in pacers if (at := p.try_acquire()) is not None]
    slow, slow_at = granted[0]
    slow.on_success(slow_at)  # the slow answer, after the probe went
    assert _admit(pacers) == 0  # the window is full: no new W
    await prober.on_throttle(probe_at, 0.95)  # the probe's 429: the reset in 0.95 s
    assert _admit(pacers) == 0
    clock.now += 0.95
    assert _admit(pacers) == w


async def test_answers_lost_for_good_delay_a_reopening_one_answer_wait_at_most() -> None:
    """A process dies (or its caller gives up) holding a third of the window's W: its
    sends never go, so the window has room and the probe is accepted.  Its answers
    are missing, so the first probe's success may be one of theirs, late; at the next
    they are written off and their share of W goes again.  (Counting them missing at
    every probe, the window never reopened: one send per ``ANSWER_WAIT`` for good.)"""
    clock = Clock()
    w = 24
    _, pacers = _pacers(clock, known_window(w, 2.0, clock.now))
    granted = [(p, at) for p in pacers * w if (at := p.try_acquire()) is not None]
    assert len(granted) == w
    dead = pacers[0]
    for pacer, at in granted:
        if pacer is not dead:
            pacer.on_success(at)
    clock.now += ANSWER_WAIT
    [(prober, at)] = [(p, at) for p in pacers if (at := p.try_acquire()) is not None]
    prober.on_success(at)  # the window had room: accepted
    clock.now += ANSWER_WAIT
    assert _admit(pacers[1:]) > 1  # the dead's share again, not one probe after another
