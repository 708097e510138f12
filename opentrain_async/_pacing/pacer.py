"""The pacer: one per client, between its requests and the pacing backend.

Before each attempt the client awaits ``acquire()`` (or takes ``try_acquire()``'s fast
path); afterwards it reports ``on_success``, ``await on_throttle`` (a 429 and its hint)
or ``on_error``.  The pacer keeps only what is local to this process: the slow-start
window, the queue of waiting requests, the slots reserved for them and the successes not
yet reported.  Everything learned lives in the backend's ``PacingState``.

Waiting requests queue first come, first served; the first in line leads: it reserves
slots for the queue in one backend call, sleeps until the next slot is due and releases
*every* waiter whose slot is due at once, so a late timer never costs a slot.  A cut or a
longer pause drops the slots still held (they were reserved at the old rate).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

import opentrain_async._telemetry as _telemetry
from opentrain_async._errors import ConfigurationError
from opentrain_async._validation import check_rate_limit

from .allowance import ANSWER_WAIT, in_window_mode, paces_reset, window_rate
from .backend import InMemoryPacingBackend, PacingBackend, Reservation, current_rate
from .display import describe
from .probe import WallProbe
from .shared_bounds import longest_ahead
from .sounding import ProbeOut, paces
from .spread import ArrivalSpread
from .state import PacingFeedback, PacingState, PacingTuning
from .waiter import Waiter, at_most, until_done
from .window import SlowStartWindow

__all__ = ["Pacer"]

_MIN_SLEEP = 0.0005  # seconds: the least a leader sleeps before asking again (no spin)


class Pacer:
    """Decides when each request of one client may start; see the package docstring.

    ``rate_limit``: a stated limit (requests/second) that caps every rate, so a server
    with that limit never has to answer 429.  ``backend`` holds the learned state
    (default: in memory, this process only); ``tuning`` its constants (only with the
    default backend: a backend brings its own).  ``clock``/``sleep`` are injectable.
    """

    def __init__(
        self,
        rate_limit: float | None = None,
        *,
        backend: PacingBackend | None = None,
        tuning: PacingTuning | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_limit is not None:  # a string from the environment too: named, not TypeError
            check_rate_limit(rate_limit)
        if backend is not None and tuning is not None:
            raise ConfigurationError("pass tuning to the backend, not the Pacer, if giving both")
        self.rate_limit = rate_limit
        self.backend: PacingBackend = backend or InMemoryPacingBackend(tuning, clock=clock)
        self.tuning = self.backend.tuning
        self._local = self.backend if isinstance(self.backend, InMemoryPacingBackend) else None
        self._clock = clock
        self._sleep = sleep
        self.window = SlowStartWindow(
            self.tuning.initial_window,
            self.tuning.slow_start_growth,
            self.tuning.slow_start_doubling,
            clock,
        )
        self._state = PacingState()  # the last state the backend returned
        self._rate: float | None = None  # the last reservation's rate
        self._paced = rate_limit is not None
        self._pause_until = float("-inf")  # local clock
        self._offset = 0.0  # backend clock minus local clock
        self._cuts = 0
        self._next_sync = float("-inf")  # local clock: unpaced check-in with the backend
        self._pending = 0  # successes not yet reported
        self._latest: float | None = None  # the latest admission among them
        self._earliest: float | None = None  # the earliest since the last timed report
        self._started: float | None = None  # local clock of the first admission
        self._local_successes = 0
        self._queue: deque[Waiter] = deque()
        self._leader: Waiter | None = None
        self._slots: deque[float] = deque()  # reserved start times, local clock
        self._late_ok = self.tuning.tolerance
        # How late a granted slot may still go (``expired``): past a loaded loop's lateness.
        self._grant_life = max(ANSWER_WAIT - self.tuning.horizon, self.tuning.tolerance)
        self._until, self._life, self._since = math.inf, math.inf, -math.inf
        # Unpaced admission waits for the first check-in's answer and a 429's report: on a
        # shared backend, round trips; admitting meanwhile sends into a limit found.
        self._unanswered = True
        self._reporting = 0
        self._released = asyncio.Event()
        self._answered = asyncio.Event()  # an answer came: a window's probe may be due
        self._windowed = False  # the last reservation was a window's allowance
        self._flushing: asyncio.Task[None] | None = None  # successes on their way
        # From round trips: is a 429 the limit's?  (On a shared backend: ``SHARED_EVIDENCE``.)
        self.spread = ArrivalSpread(shared=self._local is None)
        self.probe = WallProbe(lambda: self._offset + clock(), sleep, self.tuning.max_hint_pause)
        self.sounding = ProbeOut()  # its probe of a window's reset, if out (``sounding``)
        if self._paced:
            self.window.open_up()

    # -- what the client and displays read ---------------------------------------------

    @property
    def state(self) -> PacingState:
        """The learned state as last seen (exact for the in-memory backend)."""
        return self._state if self._local is None else self._local.state

    def current_rate(self, now: float | None = None) -> float | None:
        """The rate requests may start at right now, or None when unpaced; in a
        window's mode the window's average (``allowance.window_rate``)."""
        local = self._clock() if now is None else now
        state = self.state
        if in_window_mode(state, self.rate_limit):
            return window_rate(state)
        return current_rate(state, local + self._offset, self.tuning, self.rate_limit)

    def pause_remaining(self) -> float:
        """Seconds until the current pause after a 429 ends (0 or less: not paused)."""
        return self._pause_until - self._clock()

    def describe(self) -> str:
        """A short human description of the current pace (for progress displays)."""
        return describe(self, self._clock())

    # -- admission ------------------------------------------------------------------------

    def try_acquire(self) -> float | None:
        """Admit a request at once if nothing holds it back (no pace, pause, full window or
        check-in due; paced, a slot due now, nobody waiting before it): the admission
        time (backend clock), or None to ``await acquire()``."""
        if self.probe.shut:  # a shut limiter: only its probe goes
            return self.probe.admit(self._try_paced if self._paced else self._try_unpaced)
        if self._paced:
            return self._try_paced()
        return self._try_unpaced()

    def _try_unpaced(self) -> float | None:  # no check-in due, no pause, room in the window
        if self._held():
            return None
        now = self._clock()
        if now < self._pause_until or now >= self._next_sync or not self.window.try_enter():
            return None
        if self._started is None:
            self._started = now
        return now + self._offset

    async def acquire(self) -> float:
        """Wait until the next request may start: the admission time (backend clock), to
        report back as ``sent_at`` (a 429 admitted before the last cut does not cut again)."""
        return await self.probe.gate(self._acquire, self.window.leave)

    async def _acquire(self) -> float:
        while not self._paced:
            now = self._clock()
            if self._started is None:
                self._started = now
            if now >= self._next_sync:
                await self._check_in(now)
                continue
            if self._held():
                await self._released.wait()
                continue
            if now < self._pause_until:
                await self._sleep(self._pause_until - now)
                continue
            if await self.window.enter():
                return self._clock() + self._offset
        return await self._acquire_paced()

    async def _check_in(self, now: float) -> None:
        """Unpaced: report successes and learn the shared state (a limit, a pause)."""
        self._next_sync = now + self.tuning.sync_every
        self._release()  # (those woken by a check-in that failed wait for this one)
        try:
            reservation = await self._reserve(1)
        except BaseException:  # cancelled, failed: the next request asks again, now
            self._next_sync = -math.inf
            self._released.set()  # (those waiting for this answer)
            raise
        slots = self._absorb(reservation, now)
        if self._windowed:  # a share of a window's W: not to be wasted
            self._slots.extend(slots)
        self._unanswered = False
        self._release()

    def _try_paced(self) -> float | None:
        """The paced fast path: nobody waiting, and a slot due now (held, or reserved
        here from an in-process backend, whose call needs no await), so no future, no
        leader and no event-loop turn per request at thousands per second."""
        if self._queue or self._leader is not None:
            return None
        slots = self._slots
        now = self._clock()
        while slots and slots[0] < now - self._late_ok:
            slots.popleft()  # came due while nobody took it: now it is a burst
        if not slots and self._local is not None:
            successes = self._untimed_successes()
            reservation = self._local.reserve_now(1, successes=successes, cap=self.rate_limit)
            slots.extend(self._absorb(reservation, now))
            if reservation.rate is None:  # not paced after all: the slots are not slots
                slots.clear()
                return None
        if not slots or slots[0] > now:
            return None  # the next slot is ahead: wait for it in line
        self.window.count_in()
        return slots.popleft() + self._offset

    def _untimed_successes(self) -> int:
        """Successes for a reservation, which cannot say when they were admitted: none
        in a window's mode (a report says: ``allowance.stale_answers``)."""
        if self._windowed:
            if self._pending:
                self._flush_successes()
            return 0
        return self._take_pending()[0]  # (``_earliest`` kept for a timed report)

    def _take_pending(self) -> tuple[int, float | None]:
        """The successes not yet reported, and the latest admission among them."""
        taken = self._pending, self._latest
        self._pending, self._latest = 0, None
        return taken

    def _timed(self) -> PacingFeedback:
        """The pending successes as a report, with their latest and earliest admissions."""
        (successes, latest), earliest, self._earliest = self._take_pending(), self._earliest, None
        return PacingFeedback(successes, latest_accepted=latest, earliest_accepted=earliest)

    async def _reserve(self, count: int) -> Reservation:
        successes = self._untimed_successes()
        return await self.backend.reserve(count, successes=successes, cap=self.rate_limit)

    def _absorb(self, reservation: Reservation, local_now: float) -> list[float]:
        """Take in what a reservation says; returns its slots on the local clock."""
        self._offset = reservation.now - local_now
        until = reservation.pause_until - self._offset
        if until > max(self._pause_until, local_now) + 0.5:  # another client's 429
            _telemetry.pause(local_now, self._pause_until, until, None, shared=True)
        self._pause_until = until
        self._rate = reservation.rate
        self._windowed = reservation.rate is not None and not reservation.interval
        if reservation.rate is not None and not self._paced:
            self._become_paced()
        if reservation.cuts != self._cuts:
            self._cuts = reservation.cuts
            self._slots.clear()
        # How late a held slot may start: the tolerance, or at a stated limit one interval.
        self._late_ok = self.tuning.tolerance
        if reservation.rate is not None and reservation.rate == self.rate_limit:
            self._late_ok = min(self._late_ok, reservation.interval)
        if self._windowed:
            # A window's sends go at once: one late is not lost (a loaded machine), until
            # the window counts its answer lost and lets the probe go (``ANSWER_WAIT``
            # after the grant, at most a horizon before the slot): a slot kept past that
            # (its caller gave up) went into the probe's pause or a later window.
            self._late_ok = self._grant_life
        # A window's grant is good to its window's end, if no reservation saw another
        # since; others (a first window's too: no end yet) for ``_grant_life``.
        if reservation.until != self._until:
            self._since = reservation.now
        self._until = reservation.until
        self._life = self._grant_life if reservation.until == math.inf else math.inf
        first = reservation.first - self._offset
        self.sounding.granted(reservation.is_probe, first + self._offset)  # (as admitted)
        return [first + i * reservation.interval for i in range(reservation.count)]

    def _held(self) -> bool:
        return self._unanswered or self._reporting > 0

    def _release(self) -> None:
        (self._released.clear if self._held() else self._released.set)()

    def _become_paced(self) -> None:
        self._paced = True
        self.window.open_up()

    async def _acquire_paced(self) -> float:
        waiter = Waiter(asyncio.get_running_loop())
        self._queue.append(waiter)
        try:
            while waiter.slot is None:
                if self._leader is None:
                    self._leader = waiter
                    try:
                        await self._lead(waiter)
                    finally:
                        self._leader = None
                        if waiter.slot is None and waiter in self._queue:
                            self._queue.remove(waiter)  # cancelled while leading
                        if self._queue:  # the next in line leads on
                            self._queue[0].wake()
                else:
                    await waiter.future
                    if waiter.slot is None:  # asked to lead: a fresh future to wait on
                        waiter.future = asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            if waiter in self._queue:
                self._queue.remove(waiter)
            raise
        self.window.count_in()
        return waiter.slot + self._offset

    async def _lead(self, me: Waiter) -> None:
        """Reserve slots for the queue, sleep until the next is due, release all due."""
        slots = self._slots
        queue = self._queue
        woke = True  # slots held from before (or slept past) may be stale
        while me.slot is None:
            now = self._clock()
            if woke:
                woke = False
                while slots and slots[0] < now - self._late_ok:
                    slots.popleft()  # came due while nobody took it: now it is a burst
            if not slots:
                # Fresh slots' first is due at once or worth a sleep: the loop moves on.
                reservation = await self._reserve(len(queue))
                now = self._clock()
                slots.extend(self._absorb(reservation, now))
                if reservation.rate is None:  # unpaced after all: the slots are not paced
                    slots.clear()
                    while queue:
                        queue.popleft().wake(max(now, self._pause_until))
                    return
                if not reservation.count:  # the next slot is beyond the horizon: ask by then
                    due = min(reservation.first - self.tuning.horizon, reservation.probe_at)
                    due -= self._offset  # (``probe_at``: a window's wall sounded, its probe)
                    await self._nap(max(due - now, _MIN_SLEEP), window=not reservation.interval)
                    continue
            while slots and slots[0] <= now and queue:
                queue.popleft().wake(slots.popleft())
            if me.slot is None and slots:  # (none left: all went to those before me)
                await self._sleep(slots[0] - now)
                woke = True

    async def _nap(self, seconds: float, window: bool) -> None:
        """Sleep ``seconds``; a window's probe waiting for answers asks again at the first."""
        if not window:
            await self._sleep(seconds)
            return
        self._answered.clear()
        answer = asyncio.ensure_future(self._answered.wait())
        try:
            await until_done(answer, self._sleep(seconds))
        finally:
            answer.cancel()

    # -- a window's allowance at each reset ----------------------------------------------

    def _flush_successes(self) -> None:
        """Report successes at once, not with the next reservation: a window's W and its
        probe count every pacer's answers, and a pacer done sending makes no reservation."""
        if self._local is not None:
            self._local.report_now(self._timed())
            return
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_pending())

    async def flushed(self) -> None:
        """Wait for successes on their way to the backend (the client's close, before the
        backend's), at most ``ANSWER_WAIT``: one that never answers (Redis frozen) made
        close hang.  Past it the report is dropped: the window's next W is smaller once."""
        await at_most(self._flushing, lambda: self._sleep(ANSWER_WAIT))

    async def _flush_pending(self) -> None:
        while self._pending:
            feedback = self._timed()
            try:
                await self.backend.report(feedback)
            except Exception:  # any backend's failure: they ride with the next call
                self._pending += feedback.successes
                return

    def _window_mode(self) -> bool:
        """The limit is a window of seconds (a hint said when it resets), no stated limit:
        the backend hands out each window's W at its reset (``allowance``), shared by
        every pacer on the state; a window's 429s are not the shut limiter's (``probe``)."""
        return self.rate_limit is None and self.state.window_hint > 0

    def paces_reset(self, retry_after: float) -> bool:
        """A bulk send's 429 with this whole hint is its to wait (``allowance``)."""
        paced = paces_reset(self.state, retry_after, self.rate_limit, self.tuning)
        return paced or paces(self.state, self.rate_limit, retry_after)

    def _local_pause(self, until: float, now: float) -> float:
        """A backend's pause end on the local clock, capped (another clock's paused decades)."""
        return min(until - self._offset, now + longest_ahead(self.tuning))

    def expired(self, admitted: float) -> bool:
        """A grant (backend clock) held past its window or its slot, checked before the write."""
        now = self._clock() + self._offset
        return now > min(admitted + self._life, self._until) or admitted < self._since

    def give_back(self, admitted: float) -> None:
        """An expired grant, unsent: an unanswered request, a window's answer lost."""
        self.on_error(admitted)

    # -- feedback -------------------------------------------------------------------------

    def _jitter(self, sent_at: float) -> bool:
        """A 429 the arrival spread explains (``ArrivalSpread.explains``): a limit past its
        search (two cuts; a shared one as its reservations tell: newer), not a window's
        (a window's allowance last reserved: on Redis, its hint may not be seen yet).
        Past the first cut after the search (the search's may overshoot a bucket's rate),
        a 429 under the limit is evidence of one token (``ArrivalSpread.below``)."""
        state = self.state
        if max(self._cuts, state.cuts) < 2 or state.window_hint or self._windowed:
            return False
        rate = self._rate
        if self._local is not None:
            rate = current_rate(state, sent_at, self.tuning, self.rate_limit)
        cut = state.limit is not None and state.cuts >= 3 and sent_at >= state.origin
        if rate is not None and state.limit is not None and cut:  # (on the cut's curve)
            self.spread.below(rate, state.limit)
        return rate is not None and self.spread.explains(rate)

    def on_success(self, sent_at: float) -> None:
        """Record an accepted send (reported with the next backend call)."""
        self.spread.answered(self._clock() + self._offset - sent_at, accepted=True)
        self._pending += 1
        self._latest = sent_at if self._latest is None else max(self._latest, sent_at)
        self._earliest = sent_at if self._earliest is None else min(self._earliest, sent_at)
        self._local_successes += 1
        self.probe.accepted(sent_at)
        self.sounding.answered(sent_at)
        self.window.leave(grow=True)
        self._answered.set()
        if self._windowed:
            self._flush_successes()

    def on_error(self, sent_at: float) -> None:
        """Record a request that ended neither in success nor in a 429."""
        self.probe.errored(sent_at)
        self.sounding.answered(sent_at)
        self.window.leave(grow=False)
        self._answered.set()

    async def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """React to a 429 for a request admitted at ``sent_at`` (the backend's clock)."""
        self.window.leave(grow=False)
        jitter = self._jitter(sent_at)
        # (asked before ``probe.refused`` below: the refusal that shuts it is the wall's)
        walled = not (jitter or self._window_mode()) and self.probe.walled(sent_at, retry_after)
        now = self._clock()
        self.spread.answered(now + self._offset - sent_at, accepted=False)
        local_rate = None
        if self.state.limit is None and self._started is not None:
            local_rate = self._local_successes / max(now - self._started, 0.1)
        timed = self._timed()  # the successes pending, with their admissions
        if retry_after is not None:
            # (a hostile 1e9 s, learned as a window, would slow the recovery for good)
            retry_after = min(retry_after, self.tuning.max_hint_pause)
        feedback = attrs.evolve(
            timed,
            throttled=True,
            throttled_at=sent_at,
            retry_after=retry_after,
            local_rate=local_rate,
            spread=jitter,
            climb=jitter and self.spread.far(),
            walled=walled,
            sounding=self.sounding.answered(sent_at),
        )
        self._reporting += 1
        self._release()
        try:
            state = await self.backend.report(feedback, cap=self.rate_limit)
        except BaseException:
            self.probe.errored(sent_at)  # a probe's answer all the same: nobody waits on
            raise
        finally:
            self._reporting -= 1
            self._release()
        self._state = state
        self.spread.shared_answers(state.successes, state.throttles)
        pause_until = self._local_pause(state.pause_until, self._clock())
        if state.cuts != self._cuts or pause_until > self._pause_until:
            if self._local is not None and state.cuts == self._cuts and self._slots and self._rate:
                end = self._slots[-1] + 1 / self._rate + self._offset  # a pause: give them back
                self._local.give_back(self._slots[0] + self._offset, end, retry_after)
            self._slots.clear()  # reserved at the old rate, or into the pause
            self._cuts = state.cuts
        _telemetry.pause(self._clock(), self._pause_until, pause_until, retry_after)
        self._pause_until = max(self._pause_until, pause_until)
        counts = not (jitter or self._window_mode())  # (a window's mode probes its own way)
        self.probe.refused(sent_at, retry_after, self._pause_until + self._offset, counts)
        if state.limit is not None and not self._paced:
            self._become_paced()
        self._answered.set()
