"""Pacing decisions with an injected clock and sleep: no real waiting anywhere."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from opentrain_async import (
    ConfigurationError,
    InMemoryPacingBackend,
    Pacer,
    PacingFeedback,
    PacingState,
    PacingTuning,
)
from opentrain_async._pacing.window import SlowStartWindow
from opentrain_async.testing import FakeTime


def make(time: FakeTime, rate_limit: float | None = None, **tuning: float) -> Pacer:
    return Pacer(
        rate_limit,
        tuning=PacingTuning(**tuning),  # type: ignore[arg-type]
        clock=time.clock,
        sleep=time.sleep,
    )


async def admit(pacer: Pacer, time: FakeTime, n: int) -> list[float]:
    """Admit n requests one after another, each finishing at once; their start times."""
    starts = []
    for _ in range(n):
        admitted = await pacer.acquire()
        starts.append(time.now)
        pacer.on_success(admitted)
    return starts


async def cut_after_search(pacer: Pacer, time: FakeTime, hint: float) -> tuple[float, float]:
    """Drive a pacer through its search (a first 429, successes) to a real cut; returns
    the cut's (limit, curve origin)."""
    await admit(pacer, time, 20)
    first = await pacer.acquire()
    time.now += 0.01  # a round trip of one doubling: the search keeps its pace
    await pacer.on_throttle(first, 0.001)
    time.now += 0.05
    await admit(pacer, time, 20)
    second = await pacer.acquire()
    await pacer.on_throttle(second, hint)
    limit, cut = pacer.state.limit, pacer.state.origin
    assert limit is not None
    assert cut is not None
    return limit, cut


async def test_unpaced_until_the_first_429() -> None:
    """Before any 429 (and without a stated limit) requests start without waiting."""
    time = FakeTime(start=100.0)
    pacer = make(time)
    starts = await admit(pacer, time, 50)
    assert time.sleeps == []
    assert starts == [100.0] * 50
    assert pacer.current_rate() is None
    assert pacer.describe() == "unpaced"


async def test_stated_limit_spaces_requests_evenly() -> None:
    """rate_limit=10 starts requests exactly 0.1 s apart: smooth, no burst."""
    time = FakeTime(start=100.0)
    pacer = make(time, rate_limit=10)
    starts = await admit(pacer, time, 6)
    gaps = [round(b - a, 9) for a, b in itertools.pairwise(starts)]
    assert gaps == [0.1] * 5
    assert "stated" in pacer.describe()


async def test_slow_start_bounds_requests_in_flight() -> None:
    """Before the first 429, requests in flight are capped by a window that grows per success."""
    time = FakeTime(start=100.0)
    pacer = make(time, initial_window=2, slow_start_growth=1.0)
    first = [await pacer.acquire() for _ in range(2)]
    third = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    assert not third.done()  # window of 2 is full
    pacer.on_success(first[0])  # frees a slot and grows the window to 3
    assert await third == 100.0
    fourth = await asyncio.wait_for(pacer.acquire(), 1)  # room from the growth
    pacer.on_error(fourth)
    assert pacer.try_acquire() is not None


def test_a_burst_of_quick_successes_opens_the_window_only_a_little() -> None:
    """A fixed window or a bucket's burst accepts its first hundred at once; the requests
    in flight when it fills all come back 429, so a hundred quick successes must not have
    opened the window much (the default grows by a twentieth per success)."""
    now = [0.0]
    t = PacingTuning()
    window = SlowStartWindow(
        t.initial_window, t.slow_start_growth, t.slow_start_doubling, lambda: now[0]
    )
    admitted = 0
    for _ in range(100):  # one round trip of 0.1 ms each: time hardly moves
        while window.try_enter():
            admitted += 1
        window.leave(grow=True)
        now[0] += 0.0001
    assert window.size <= 10
    assert admitted >= 100


async def _round_trips(window: SlowStartWindow, now: list[float], trips: list[float]) -> list[int]:
    """200 requests queue at the window; after each of ``trips`` (seconds) every request
    in flight comes back accepted.  Returns the requests in flight after each."""

    async def request() -> None:
        await window.enter()

    tasks = [asyncio.ensure_future(request()) for _ in range(200)]
    await asyncio.sleep(0)
    sizes = []
    for trip in trips:
        flying = window.in_flight
        now[0] += trip
        for _ in range(flying):
            window.leave(grow=True)
        await asyncio.sleep(0)
        sizes.append(window.in_flight)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return sizes


async def test_where_round_trips_are_long_time_grows_the_window() -> None:
    """With a 100 ms round trip, successes come slowly: the window doubles per
    ``slow_start_doubling`` of time spent full, so 64 in flight are reached in ~0.4 s."""
    now = [0.0]
    sizes = await _round_trips(SlowStartWindow(4, 0.05, 0.1, lambda: now[0]), now, [0.1] * 4)
    assert sizes[0] >= 8
    assert sizes[3] >= 64
    now = [0.0]
    without = await _round_trips(SlowStartWindow(4, 0.05, None, lambda: now[0]), now, [0.1] * 4)
    assert without[3] < 8  # successes alone: a twentieth each


async def test_a_stalled_loop_does_not_open_the_window() -> None:
    """Half a second with the event loop blocked (a slow callback) is not half a second
    of round trips: the window doubles once at most, so the burst that follows is small
    (a fixed window filling then would answer 429 to everything in flight)."""
    now = [0.0]
    sizes = await _round_trips(SlowStartWindow(4, 0.05, 0.1, lambda: now[0]), now, [0.001, 0.5])
    assert sizes[1] <= 2 * sizes[0] + 1


async def test_first_429_starts_pacing_and_exact_hint_pauses_everyone() -> None:
    """A fractional hint pauses the whole client until it has passed; pacing begins."""
    time = FakeTime(start=100.0)
    pacer = make(time)
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 0.75)
    assert pacer.state.limit is not None
    assert pacer.state.pause_until == pytest.approx(100.75)
    await pacer.acquire()
    assert time.now >= 100.75
    assert pacer.state.throttles == 1


async def test_whole_second_hint_pauses_only_briefly() -> None:
    """A whole-second hint may be rounded up: the client pauses max_pause, not the full hint."""
    time = FakeTime(start=100.0)
    pacer = make(time, max_pause=0.05)
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 1)
    assert pacer.state.pause_until == pytest.approx(100.05)


async def test_back_to_back_429s_double_the_short_pause() -> None:
    """429s with no success between them (a quiet window) back off the pause exponentially."""
    time = FakeTime(start=100.0)
    pacer = make(time, max_pause=0.05)
    pauses = []
    for _ in range(4):
        admitted = await pacer.acquire()
        await pacer.on_throttle(admitted, 1)
        pauses.append(round(pacer.state.pause_until - time.now, 6))
    assert pauses == [0.05, 0.1, 0.2, 0.4]


async def test_long_whole_second_hint_pauses_everyone() -> None:
    """A hint of 7 whole seconds (a full window) pauses every request for all of it:
    a probe before then would only cost its request another 7 s."""
    time = FakeTime(start=100.0)
    pacer = make(time, max_pause=0.05)
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 7)
    assert pacer.state.pause_until == pytest.approx(107.0)
    await pacer.acquire()
    assert time.now >= 107.0


async def test_rate_searches_up_then_cuts_to_what_the_server_accepted() -> None:
    """After the first 429 the rate doubles per period until the next 429, then drops to
    between the rate one doubling earlier (which drew no 429) and the drawing rate, no
    lower than what the server accepted over the last window."""
    time = FakeTime(start=100.0)
    pacer = make(time, doubling=0.1)
    await admit(pacer, time, 10)
    admitted = await pacer.acquire()
    time.now += 0.1
    # (hints of 0.1 ms: a bucket's bound, 10,000/s, far above every rate here)
    await pacer.on_throttle(admitted, 0.0001)  # first 429: ~10 accepted in 0.1 s
    start_rate = pacer.current_rate()
    assert start_rate is not None
    time.now += 0.2  # two doublings later
    assert pacer.current_rate() == pytest.approx(start_rate * 4, rel=0.05)
    starts = await admit(pacer, time, 200)  # keep sending for longer than the window
    accepted = sum(1 for t in starts if t >= time.now - 0.25) / 0.25
    admitted = await pacer.acquire()
    drawing_rate = pacer.current_rate()
    # (no hint: 0.1 ms would bound a bucket at 10,000/s, above the search, which then
    # goes on; 1 ms at 1,000/s, below it, ending the search there)
    await pacer.on_throttle(admitted, None)
    limit = pacer.state.limit
    assert limit is not None
    assert drawing_rate is not None
    assert drawing_rate / 2 < limit < drawing_rate
    assert limit >= 0.8 * accepted
    assert pacer.current_rate() == pytest.approx(0.9 * limit, rel=0.05)


async def test_one_cut_per_episode() -> None:
    """429s admitted before the last cut, or with no success since it, do not cut again."""
    time = FakeTime(start=100.0)
    pacer = make(time, doubling=0.01)
    await admit(pacer, time, 20)
    early = await pacer.acquire()
    time.now += 0.1
    await pacer.on_throttle(early, 0.001)
    time.now += 0.05
    await admit(pacer, time, 20)
    stale = pacer.state.cut_at
    assert stale is not None
    late = [await pacer.acquire() for _ in range(3)]
    await pacer.on_throttle(late[0], 0.001)  # cuts
    limit_after_cut = pacer.state.limit
    await pacer.on_throttle(early, 0.001)  # admitted before the cut: ignored
    await pacer.on_throttle(late[1], 0.001)  # no success since the cut: same episode
    assert pacer.state.limit == limit_after_cut
    assert pacer.state.throttles == 4


async def test_rate_relaxes_above_the_old_limit_over_time() -> None:
    """After a cut the rate climbs back to the limit and then keeps probing above it."""
    time = FakeTime(start=100.0)
    pacer = make(time, doubling=0.01, recover=0.3)
    limit, cut = await cut_after_search(pacer, time, 0.001)
    rates = [pacer.current_rate(cut + dt) for dt in (0.0, 0.15, 0.3, 0.6, 1.0)]
    assert None not in rates
    r0, r1, r2, r3, r4 = (float(r) for r in rates if r is not None)
    assert r0 == pytest.approx(0.9 * limit)
    assert r2 == pytest.approx(limit)
    assert r0 < r1 < r2 < r3 < r4
    assert r4 > 1.5 * limit


async def test_long_hints_make_probing_rarer() -> None:
    """A cut with a 1 s hint stretches the climb back, since each probe 429 costs 1 s."""
    time = FakeTime(start=100.0)
    pacer = make(time, doubling=0.01, recover=0.3)
    limit, cut = await cut_after_search(pacer, time, 1)
    early = pacer.current_rate(cut + 0.3)
    assert early is not None
    assert early < 0.96 * limit  # with a short hint it would be back at the limit by now
    assert pacer.current_rate(cut + 1.5) == pytest.approx(limit)


async def test_stated_limit_caps_the_learned_rate() -> None:
    """With rate_limit set, learning can lower the pace but never raise it above the limit."""
    time = FakeTime(start=100.0)
    pacer = make(time, rate_limit=50)
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 0.01)
    time.now += 10
    rate = pacer.current_rate()
    assert rate is not None
    assert rate <= 50


async def test_state_lives_in_the_backend() -> None:
    """The learned state is held by the backend, so pacers sharing one see every change."""
    time = FakeTime(start=100.0)
    backend = InMemoryPacingBackend(clock=time.clock)
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    await pacer.on_throttle(pacer.try_acquire() or 0.0, 0.5)
    assert isinstance(await backend.load(), PacingState)
    assert backend.state.limit is not None
    assert backend.state.pause_until == pytest.approx(100.5)
    other = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    assert other.current_rate() == pacer.current_rate()
    time.now += 0.3  # the search state is shared too: both compute the same curve later
    assert other.current_rate() == pacer.current_rate()


def test_invalid_stated_limit_is_refused() -> None:
    """rate_limit must be a positive number."""
    with pytest.raises(ValueError, match="rate_limit"):
        Pacer(rate_limit=0)


async def test_cancelled_waiter_does_not_leak_a_slot() -> None:
    """A request cancelled while waiting for the slow-start window frees nothing it never took."""
    time = FakeTime(start=100.0)
    pacer = make(time, initial_window=1, slow_start_growth=0.0)
    held = await pacer.acquire()
    waiting = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pacer.on_success(held)
    assert pacer.try_acquire() is not None


async def test_a_search_that_never_meets_a_429_stays_finite() -> None:
    """Long after a single 429 (no second one to end the search) the rate is finite."""
    time = FakeTime(start=100.0)
    pacer = make(time)
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 0.01)
    time.now += 500
    rate = pacer.current_rate()
    assert rate is not None
    assert rate < float("inf")
    assert "/s" in pacer.describe()
    await pacer.acquire()


async def test_woken_then_cancelled_waiter_passes_its_slot_on() -> None:
    """A waiter handed a slot but cancelled before running gives the slot to the next one."""
    time = FakeTime(start=100.0)
    pacer = make(time, initial_window=1, slow_start_growth=0.0)
    held = await pacer.acquire()
    first = asyncio.ensure_future(pacer.acquire())
    second = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    pacer.on_success(held)  # hands the slot to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == time.now


async def test_slow_start_window_is_first_come_first_served() -> None:
    """A new request cannot take a freed slot ahead of requests already waiting for it."""
    time = FakeTime(start=100.0)
    pacer = make(time, initial_window=1, slow_start_growth=0.0)
    held = await pacer.acquire()
    waiting = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    pacer.on_success(held)
    assert pacer.try_acquire() is None  # the slot went to the waiter
    assert await waiting == time.now


@pytest.mark.parametrize(
    "options",
    [
        {"beta": 1.5},
        {"beta": 0},
        {"recover": 0},
        {"doubling": -1},
        {"tolerance": -1},
        {"slow_start_doubling": 0},
        {"recover_round_trips": -1},
    ],
)
def test_nonsense_tuning_is_refused(options: dict[str, float]) -> None:
    """Tuning outside its range is refused at construction, naming the field."""
    with pytest.raises(ValueError, match=f"{next(iter(options))} must be"):
        PacingTuning(**options)  # type: ignore[arg-type]


class LateTime(FakeTime):
    """A clock whose sleeps overshoot: a busy event loop fires timers late."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)  # the waiters woken so far start now, as in a real loop
        await super().sleep(seconds + self.late)


async def test_every_due_slot_is_released_at_once_so_late_timers_cost_nothing() -> None:
    """At a learned 1,000/s with timers 5 ms late, requests still start at 1,000/s: each
    wake-up releases every slot that is due, instead of one per timer."""
    time = LateTime(late=0.005)
    # A learned limit whose curve stays at 1,000/s for the test's second.
    state = PacingState(limit=1000 / 0.9, searching=False, origin=100.0, recover=1e6)
    backend = InMemoryPacingBackend(clock=time.clock, state=state)
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(50):
            admitted = await pacer.acquire()
            starts.append(time.now)
            pacer.on_success(admitted)

    await asyncio.gather(*(worker() for _ in range(20)))
    assert len(starts) == 1000
    elapsed = max(starts) - min(starts)
    assert elapsed == pytest.approx(1.0, rel=0.03)  # one at a time would take 6 s
    assert len(set(starts)) < 400  # released in groups, not one per wake-up


async def test_a_stated_limit_never_bunches_late_slots() -> None:
    """At a stated limit a late timer catches up one slot at most: the server, whose
    limit it is, never sees two requests closer than the interval allows in a bunch."""
    time = LateTime(late=0.005)
    pacer = make(time, rate_limit=1000)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(10):
            admitted = await pacer.acquire()
            starts.append(time.now)
            pacer.on_success(admitted)

    await asyncio.gather(*(worker() for _ in range(20)))
    assert len(starts) == 200
    bunches = [starts.count(t) for t in set(starts)]
    assert max(bunches) <= 2
    assert len(starts) / (max(starts) - min(starts)) <= 1000


async def test_a_paced_slot_due_now_is_taken_without_waiting_but_never_out_of_turn() -> None:
    """Paced, with nobody waiting and the schedule due (the sender is the bottleneck),
    ``try_acquire`` hands out the slot at once; never faster than the rate, and never
    while a request waits in line before it."""
    time = FakeTime(start=100.0)
    pacer = make(time, rate_limit=100)
    assert pacer.try_acquire() == 100.0  # due now: no await
    assert pacer.try_acquire() is None  # the next is 10 ms away
    during: list[float | None] = []
    time.on_sleep.append(lambda _: during.append(pacer.try_acquire()))
    assert await pacer.acquire() == pytest.approx(100.01)  # waits in line for it
    assert during == [None]  # someone in line: nobody overtakes
    time.on_sleep.clear()
    time.now += 0.015  # the sender fell behind: the slot at 100.02 is still due
    assert pacer.try_acquire() == pytest.approx(100.02)
    time.now += 1.0  # idle: the schedule restarts now, no burst of missed slots
    assert pacer.try_acquire() == pytest.approx(101.025)
    assert pacer.try_acquire() is None


async def test_a_consumer_pause_does_not_make_the_pacer_forget() -> None:
    """Paced at a learned rate, then idle for a second (a slow on_outcome): the pace
    afterwards is the one it had, not a restart from scratch nor a burst."""
    time = FakeTime(start=100.0)
    pacer = make(time, doubling=0.01)
    limit, _ = await cut_after_search(pacer, time, 0.001)
    await admit(pacer, time, 50)
    before = pacer.current_rate()
    assert before is not None
    time.now += 1.0  # nobody asks for a slot
    starts = await admit(pacer, time, 3)
    after = pacer.current_rate()
    assert after is not None
    assert after == pytest.approx(before, rel=0.15)
    assert starts[1] - starts[0] == pytest.approx(1 / after, rel=0.15)  # no burst
    # A 429 right after the pause cuts from the pace, not from what trickled through.
    admitted = await pacer.acquire()
    await pacer.on_throttle(admitted, 0.001)
    assert pacer.state.limit is not None
    assert pacer.state.limit >= 0.8 * limit


async def test_pacers_sharing_a_backend_learn_from_each_other() -> None:
    """A 429 seen by one pacer paces the other at its next check-in (every 50 ms)."""
    time = FakeTime(start=100.0)
    backend = InMemoryPacingBackend(clock=time.clock)
    one = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    two = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    two.on_success(await two.acquire())
    await one.on_throttle(await one.acquire(), 0.2)
    assert two.try_acquire() is not None  # not checked in yet: still unpaced
    time.now += 0.06
    assert two.try_acquire() is None  # check-in due
    await two.acquire()
    assert time.now >= 100.2  # it waited out the shared pause
    assert two.current_rate() == one.current_rate()
    assert two.describe().endswith("(learned)")


class SlowBackend(InMemoryPacingBackend):
    """A backend whose calls take a round trip (as Redis would)."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__(clock=time.clock)
        self.time = time
        self.reserves = 0

    async def reserve(self, count: int, *, successes: int = 0, cap: float | None = None):  # type: ignore[no-untyped-def]
        self.reserves += 1
        await asyncio.sleep(0)
        self.time.now += 0.0005
        return await super().reserve(count, successes=successes, cap=cap)


class GatedBackend(InMemoryPacingBackend):
    """A backend whose calls wait until the test opens the gate (a round trip to a busy
    Redis, made as long as the test needs)."""

    def __init__(self, time: FakeTime) -> None:
        super().__init__(clock=time.clock)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def reserve(self, count: int, *, successes: int = 0, cap: float | None = None):  # type: ignore[no-untyped-def]
        self.entered.set()
        await self.gate.wait()
        return await super().reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None):  # type: ignore[no-untyped-def]
        self.entered.set()
        await self.gate.wait()
        return await super().report(feedback, cap=cap)


async def turns(n: int = 20) -> None:
    """Let every ready task run (no time passes: nothing here sleeps on a clock)."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_nothing_is_admitted_before_a_slow_backend_first_answers() -> None:
    """Unpaced, a pacer still asks its backend first: while that first answer is on its
    way (80-200 ms from eight processes starting at once), nobody is admitted, or each
    process sends its window into a limit another process has already found."""
    time = FakeTime(start=100.0)
    backend = GatedBackend(time)
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    first = asyncio.ensure_future(pacer.acquire())
    await backend.entered.wait()
    assert pacer.try_acquire() is None
    second = asyncio.ensure_future(pacer.acquire())
    await turns()
    assert not first.done()
    assert not second.done()
    backend.gate.set()
    assert len(await asyncio.gather(first, second)) == 2
    assert pacer.try_acquire() is not None  # answered: unpaced admission as usual


async def test_nothing_is_admitted_while_a_429_is_being_reported() -> None:
    """Before any limit is known, a 429 this pacer saw holds its admissions until the
    backend has the report (and with it the first estimate and pause): sending meanwhile
    only draws more 429s from the limit just found."""
    time = FakeTime(start=100.0)
    backend = GatedBackend(time)
    backend.gate.set()
    pacer = Pacer(backend=backend, clock=time.clock, sleep=time.sleep)
    admitted = await pacer.acquire()
    pacer.on_success(await pacer.acquire())
    backend.gate.clear()
    backend.entered.clear()
    reporting = asyncio.ensure_future(pacer.on_throttle(admitted, 0.05))
    await backend.entered.wait()
    assert pacer.try_acquire() is None
    waiting = asyncio.ensure_future(pacer.acquire())
    await turns()
    assert not waiting.done()
    backend.gate.set()
    await reporting
    assert pacer.state.limit is not None  # paced now: the wait goes by the rate
    assert await waiting >= admitted + 0.05 - 1e-9  # and after the hint's pause


async def test_a_remote_backend_is_asked_once_per_batch_of_slots() -> None:
    """With a backend that takes a round trip, waiting requests share reservations:
    far fewer calls than requests, and every request still gets its own slot."""
    time = FakeTime(start=100.0)
    backend = SlowBackend(time)
    pacer = Pacer(2000, backend=backend, clock=time.clock, sleep=time.sleep)
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(20):
            admitted = await pacer.acquire()
            starts.append(admitted)
            pacer.on_success(admitted)

    await asyncio.gather(*(worker() for _ in range(32)))
    assert len(starts) == 640
    assert backend.reserves < 640 / 5
    assert (await backend.load()).successes >= 600  # successes rode along


async def test_a_cancelled_leader_hands_the_lead_on() -> None:
    """The request sleeping until the queue's next slot is cancelled: the next in line
    takes over the lead and gets the slot."""
    now = [100.0]
    sleeping: list[asyncio.Future[None]] = []

    async def sleep(seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sleeping.append(future)
        await future
        now[0] += seconds

    pacer = Pacer(1, clock=lambda: now[0], sleep=sleep)
    pacer.on_success(await pacer.acquire())
    leader = asyncio.ensure_future(pacer.acquire())
    follower = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    assert len(sleeping) == 1  # the leader sleeps until the next slot
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    await asyncio.sleep(0)
    assert len(sleeping) == 2  # the follower leads now
    for _ in range(10):  # it sleeps until its slot is near, asks for it, sleeps till due
        if follower.done():
            break
        sleeping[-1].set_result(None)
        await asyncio.sleep(0)
    assert await asyncio.wait_for(follower, 1) == pytest.approx(101.0)


async def test_the_leader_never_spins_when_time_passes_between_its_steps() -> None:
    """Each clock read costs time (a busy machine) and slots are tighter than that: the
    leader still releases what is due or sleeps; it never loops on reservations (with
    the in-memory backend, a loop that never awaits would freeze the event loop)."""
    now = [100.0]
    reads = [0]

    def clock() -> float:
        reads[0] += 1
        if reads[0] > 200_000:
            raise RuntimeError("the pacer is spinning")
        now[0] += 0.00003  # 30 µs per step, slots 20 µs apart
        return now[0]

    async def sleep(seconds: float) -> None:
        now[0] += max(seconds, 0.0) + 0.012  # and every timer fires 12 ms late
        await asyncio.sleep(0)

    pacer = Pacer(50_000, clock=clock, sleep=sleep)
    for _ in range(3):
        admitted = await pacer.acquire()
        pacer.on_success(admitted)
        now[0] += 0.05  # busy elsewhere: the schedule falls behind, not idle
    results = await asyncio.gather(*(pacer.acquire() for _ in range(64)))
    assert len(results) == 64
    assert reads[0] < 20_000


async def test_an_unpaced_pacer_learns_a_shared_limit_within_sync_every() -> None:
    """Two processes share a backend; one meets a 429: the other, still unpaced, checks
    in every ``sync_every`` and is paced from its next check-in on (not 50 ms later)."""
    time = FakeTime(start=100.0)
    shared = InMemoryPacingBackend(PacingTuning(sync_every=0.005), clock=time.clock)
    first = Pacer(backend=shared, clock=time.clock, sleep=time.sleep)
    other = Pacer(backend=shared, clock=time.clock, sleep=time.sleep)
    other.on_success(await other.acquire())  # checked in at 100.0, nothing known yet
    sent = await first.acquire()
    await first.on_throttle(sent, 0.01)
    assert first.window.open
    time.now += 0.004
    admitted = other.try_acquire()
    assert admitted is not None  # between check-ins it cannot know
    other.on_success(admitted)
    time.now += 0.001
    assert other.try_acquire() is None  # a check-in is due
    started = await other.acquire()
    assert other.window.open
    assert started >= shared.state.pause_until  # it waited out the pause the other met


def test_sync_every_must_be_positive() -> None:
    """A clear error naming the field."""
    with pytest.raises(ConfigurationError, match="sync_every"):
        PacingTuning(sync_every=0)
