"""Rate control shared by every request of one client: the pacer.

Before each attempt the client awaits ``Pacer.acquire()``; afterwards it reports
``on_success``, ``on_throttle`` (a 429 and its hint) or ``on_error``.  The pacer turns
those reports into when the next request may start:

* **Stated limit** (``rate_limit=``): requests are spaced evenly at that rate (GCRA
  virtual scheduling), so a server with that limit never has to answer 429.
* **Learned limit** (default):

  - *Before the first 429* nothing is paced, but requests in flight ramp up as in TCP
    slow start (the window grows by a quarter per round trip), so a server burst, say a
    fixed window filling up, is not met by a wall of concurrent requests.
  - *On a 429* the rejected request waits at least its hint (the retry policy).  A
    fractional hint is taken as exact and pauses the whole client until it has passed;
    a whole-second hint may be rounded up, so the client pauses only briefly, doubling
    that pause while 429s come back to back.
  - *The first 429* starts pacing at what got through so far, and the rate doubles
    every ``doubling`` seconds until the next 429 says where the limit is.
  - *Each later 429* remembers the lower of the rate that drew it and what the server
    accepted over the last 0.25-1 s (CUBIC's W_max), and restarts a cubic curve at
    ``beta`` times that.  The curve climbs back to it within ``recover`` seconds
    (longer when hints are long: a probe's 429 costs its request the hint), then probes
    above it, so a raised limit is found again within a second or two.  There is one cut
    per episode: 429s for requests admitted before the cut, or with no success since it,
    do not cut again.

What processes sharing one token could share (learned limit, search or curve, time of
the last cut, pause-until) lives in a ``PacingState`` behind a ``PacingStore``; the
default keeps it in memory, and a shared store can implement the same two methods
without touching the send path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

__all__ = ["InMemoryPacingStore", "Pacer", "PacingState", "PacingStore"]

_MAX_WINDOW = 1.0  # seconds of accepted requests remembered for measuring


@attrs.define
class PacingState:
    """What the pacer has learned; everything a shared store would need to hold."""

    limit: float | None = None
    """The learned sustainable rate in requests/second; None until the first 429."""
    cut_at: float | None = None
    """Clock time of the last rate cut (a reaction to a 429)."""
    pause_until: float = 0.0
    """No request starts before this clock time."""
    throttles: int = 0
    """429s reported to this pacer."""
    searching: bool = True
    """No cut while paced yet: the rate doubles until a 429 says where the limit is."""
    recover: float | None = None
    """Seconds the cubic curve takes to climb back to ``limit`` (None: the default)."""


class PacingStore(Protocol):
    """Holds the ``PacingState`` of every sender that shares one token."""

    def load(self) -> PacingState:
        """Return the current state (the pacer treats it as read-only)."""

    def save(self, state: PacingState) -> None:
        """Replace the current state."""


class InMemoryPacingStore:
    """The default store: state lives in this process only."""

    def __init__(self) -> None:
        self._state = PacingState()

    def load(self) -> PacingState:
        """Return the current state."""
        return self._state

    def save(self, state: PacingState) -> None:
        """Replace the current state."""
        self._state = state


class Pacer:
    """Decides when each request of one client may start; see the module docstring.

    Tuning (defaults were chosen with ``python -m benchmarks.pacing_sim``): ``beta`` is
    the cut on a 429 (rate <- beta * the rate that drew it); ``recover`` the seconds the
    cubic curve takes to climb back to that rate, after which it probes above it;
    ``doubling`` the seconds per doubling while the limit is still being searched for.
    ``max_pause`` caps the whole-client pause on a whole-second (possibly rounded)
    hint, ``max_exact_pause`` on a fractional one.  ``clock``/``sleep`` are injectable.
    """

    def __init__(
        self,
        rate_limit: float | None = None,
        *,
        store: PacingStore | None = None,
        beta: float = 0.9,
        recover: float = 0.3,
        doubling: float = 0.1,
        max_pause: float = 0.05,
        max_exact_pause: float = 1.0,
        initial_window: int = 4,
        slow_start_growth: float = 0.25,
        window: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        if not 0 < beta < 1:
            raise ValueError("beta must be between 0 and 1 (exclusive)")
        for name, value in (("recover", recover), ("doubling", doubling), ("window", window)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0")
        self.rate_limit = rate_limit
        self.beta = beta
        self.recover = recover
        self.doubling = doubling
        self.max_pause = max_pause
        self.max_exact_pause = max_exact_pause
        self.slow_start_growth = slow_start_growth
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._store: PacingStore = store or InMemoryPacingStore()
        self._lock = asyncio.Lock()
        self._next_slot = 0.0
        self._started: float | None = None
        self._successes = 0
        self._successes_at_cut = 0
        self._streak = 0  # 429s since the last success
        self._pause_began = 0.0
        self._recent: deque[float] = deque()  # success times within the last window
        # Slow start (before the first 429 only): requests in flight, and how many may be.
        self._in_flight = 0
        self._cwnd: float = initial_window
        self._cwnd_waiters: deque[asyncio.Future[bool]] = deque()

    @property
    def state(self) -> PacingState:
        """The shared state (limit, last cut, pause)."""
        return self._store.load()

    def current_rate(self, now: float | None = None) -> float | None:
        """The rate requests may start at right now, or None when unpaced."""
        state = self._store.load()
        if state.limit is None or state.cut_at is None:
            return self.rate_limit
        now = self._clock() if now is None else now
        dt = max(0.0, now - state.cut_at)
        if state.searching:
            # Bounded: a search that never meets a 429 must not overflow (2**30 is
            # far past any server's limit, and the curve stays finite).
            rate = state.limit * 2 ** min(dt / self.doubling, 30.0)
        else:
            recover = state.recover or self.recover
            cubic = (1 - self.beta) / recover**3
            rate = state.limit * (1 + cubic * (min(dt, 60.0) - recover) ** 3)
        if self.rate_limit is not None:
            rate = min(rate, self.rate_limit)
        return rate

    def try_acquire(self) -> float | None:
        """Admit a request at once if nothing holds it back (no pause, pace or full
        slow-start window); returns the admission time, or None to ``await acquire()``.
        """
        state = self._store.load()
        if state.limit is not None or self.rate_limit is not None:
            return None
        now = self._clock()
        if now < state.pause_until or self._in_flight >= self._cwnd or self._cwnd_waiters:
            return None
        if self._started is None:
            self._started = now
        self._in_flight += 1
        return now

    async def acquire(self) -> float:
        """Wait until the next request may start; returns the admission time.

        Report that time back as ``sent_at``: a 429 for a request admitted before the
        last cut is a consequence of the old rate and does not cut again.
        """
        now = self._clock()
        if self._started is None:
            self._started = now
        state = self._store.load()
        while state.limit is None and self.rate_limit is None:
            # Unpaced: only the slow-start window (and a pause) may hold a request back.
            if now < state.pause_until:
                await self._sleep(state.pause_until - now)
            elif self._in_flight < self._cwnd and not self._cwnd_waiters:
                self._in_flight += 1
                return now
            else:  # wait in line for the window (first come, first served)
                waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
                self._cwnd_waiters.append(waiter)
                try:
                    granted = await waiter
                except asyncio.CancelledError:
                    if waiter.done() and not waiter.cancelled() and waiter.result():
                        self._release()  # handed a slot we will not use: pass it on
                    raise
                if granted:  # the releaser counted us in
                    return self._clock()
            now = self._clock()
            state = self._store.load()
        async with self._lock:
            while True:
                now = self._clock()
                state = self._store.load()
                rate = self.current_rate(now)
                assert rate is not None
                interval = 1.0 / rate
                start = max(now, state.pause_until, self._next_slot)
                if start <= now:
                    # Virtual scheduling: an on-time request (even one woken a little
                    # late) keeps the cadence; after idling, the schedule restarts now.
                    # Never more than one request per slot, so never a burst.
                    on_time = now - self._next_slot < interval
                    self._next_slot = (self._next_slot if on_time else now) + interval
                    self._in_flight += 1
                    return now
                await self._sleep(start - now)

    def _release(self, paced: bool | None = None) -> None:
        """One admitted request is over: hand its slot to the next waiter in line."""
        self._in_flight -= 1
        waiters = self._cwnd_waiters
        if not waiters:
            return
        if paced is None:
            paced = self._store.load().limit is not None
        while waiters and (paced or self._in_flight < self._cwnd):
            waiter = waiters.popleft()
            if waiter.done():  # cancelled while waiting
                continue
            if paced:
                waiter.set_result(False)  # the rate decides now: go and wait for it
            else:
                self._in_flight += 1  # hand the slot over
                waiter.set_result(True)

    def on_success(self, sent_at: float) -> None:
        """Record an accepted request: it grows the slow-start window, or, once paced,
        counts towards the accepted rate measured at the next cut."""
        self._successes += 1
        self._streak = 0
        paced = self._store.load().limit is not None
        if not paced:
            # Slow start: the window grows by a quarter per round trip, so a server
            # burst (say a fixed window filling up) meets few requests in flight.
            self._cwnd += self.slow_start_growth
        else:  # paced: remember when, for the accepted rate at the next cut
            now = self._clock()
            recent = self._recent
            recent.append(now)
            horizon = now - _MAX_WINDOW
            while recent[0] < horizon:
                recent.popleft()
        if self._cwnd_waiters:
            self._release(paced)
        else:  # nobody to hand the slot to (the common case)
            self._in_flight -= 1

    def accepted_rate(self, now: float | None = None, span: float | None = None) -> float:
        """Requests per second the server accepted over the last ``span`` seconds
        (default ``window``) of sending: pauses and time before the start don't count."""
        now = self._clock() if now is None else now
        horizon = now - (self.window if span is None else span)
        # Only time when sending was allowed counts: not before the start, nor a pause.
        paused_until = min(self._store.load().pause_until, now)
        start = max(horizon, self._started if self._started is not None else now, paused_until)
        count = sum(1 for t in self._recent if t >= start)
        return count / max(now - start, 1e-3)

    def on_error(self, sent_at: float) -> None:
        """Record a request that ended neither in success nor in a 429."""
        self._release()

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """React to a 429 for a request admitted at ``sent_at``."""
        now = self._clock()
        state = attrs.evolve(self._store.load())
        state.throttles += 1
        pause_end = now
        if retry_after is not None and retry_after > 0:
            # A fractional hint is taken as exact: nothing gets through before it, so
            # everyone waits.  A whole-second hint may be rounded up; only a short
            # pause then, and the rejected request alone waits the full hint.
            # Back-to-back 429s (no success between) double the short pause; requests
            # admitted before the current pause began are part of the same burst.
            exact = retry_after != int(retry_after)
            if sent_at >= self._pause_began:
                self._streak += 1
            cap = self.max_exact_pause if exact else self.max_pause * 2 ** (self._streak - 1)
            pause_end = now + min(retry_after, cap)
            if pause_end > state.pause_until:
                self._pause_began = now
        if state.limit is None or state.cut_at is None:
            # First 429: start pacing at what got through so far (an underestimate)
            # and double until the next 429 says where the limit is.
            started = self._started if self._started is not None else now
            state.limit = max(self._successes / max(now - started, 0.1), 1.0)
            state.cut_at = max(pause_end, state.pause_until)
        elif (
            sent_at > state.cut_at
            # 429s with no success between them are one episode: one cut.
            and self._successes > self._successes_at_cut
            # While searching, a 429 before the rate has grown at all is the burst's
            # aftermath (the server is still empty), not a verdict on the new rate.
            and not (state.searching and now - state.cut_at < self.doubling)
        ):
            # Remember the rate that drew the 429 (CUBIC's W_max), or what the server
            # accepted just before if that was less (a slowly draining bucket makes
            # the drawing rate overstate the limit), and restart the curve below it
            # once the pause is over.
            # The server's granularity (its hint) sets how far back to look: a
            # longer window dilutes the burst a bucket adds to what it accepts.
            rate = self.current_rate(now) or state.limit
            span = min(max(self.window, retry_after or 0.0), _MAX_WINDOW)
            state.limit = max(min(rate, self.accepted_rate(now, span)), 0.5)
            state.cut_at = max(pause_end, state.pause_until)
            self._successes_at_cut = self._successes
            state.searching = False
            # A probe above the limit costs its request the hint: with long hints,
            # probe less often (the curve takes longer to climb back and past).
            hint = retry_after or 0.0
            state.recover = min(max(self.recover, 1.5 * hint), max(self.recover, 2.0))
        elif pause_end > max(state.pause_until, now):
            # A pause without a cut freezes the curve for its duration.
            state.cut_at += pause_end - max(state.pause_until, now)
        state.pause_until = max(state.pause_until, pause_end)
        self._store.save(state)
        self._release()

    def describe(self) -> str:
        """A short human description of the current pace (for progress displays)."""
        rate = self.current_rate()
        if rate is None:
            return "unpaced"
        return f"{rate:,.0f}/s" + (" (learned)" if self.state.limit is not None else " (stated)")
