"""A pacing backend that outlives its shared side: pace locally, say so once, count it,
try again now and then, rejoin.

``PacingFallback`` wraps any ``PacingBackend`` (``wrapped``: the one other processes
share) and is one itself.  Each call goes to ``wrapped``; one that raises one of
``errors`` or takes longer than ``budget`` means the shared state is out of reach.
Fail-open (the default), ``local`` answers (an ``InMemoryPacingBackend`` seeded with
this process's recent share of the shared rate) until a background probe (``rejoin``;
by default ``wrapped.load()``) succeeds; ``fail_closed`` waits ``retry_every`` and
tries again instead.  Each outage logs one warning (the error's type only: its text may
quote a URL or a server's reply) and calls every ``on_fallback`` (the client counts
them in ``stats.pacing_fallbacks``).  ``RedisPacingBackend`` is this policy over Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs

from .backend import InMemoryPacingBackend, PacingBackend, Reservation
from .curve import MIN_RATE
from .shared_bounds import UnusableSharedState
from .state import PacingFeedback, PacingState

__all__ = ["PacingFallback"]

logger = logging.getLogger("opentrain_async")

T = TypeVar("T")

_TIMES = ("origin", "cut_at", "pause_until", "pause_began", "tat", "sample_at")


class PacingFallback:
    """``wrapped`` while it answers, else local pacing or waiting (module doc).

    ``where`` names the shared side in messages (``"Redis at redis://h:6379/0"``, never
    a password); ``errors`` are what mean "out of reach" (any exception by default;
    ``budget``'s timeout always counts); ``state_ttl`` is how long an unused shared
    state lives (said when it is unusable).  ``learned`` tells whether the shared state
    had a rate when last heard (else the local pacer starts slow; by default: the last
    answer had one); ``rejoin`` is the probe, given the local state: it returns when the
    shared side answers again, raising one of ``errors`` while it does not.
    """

    def __init__(
        self,
        wrapped: PacingBackend,
        *,
        where: str,
        errors: tuple[type[BaseException], ...] = (Exception,),
        budget: float | None = None,
        fail_closed: bool = False,
        retry_every: float = 1.0,
        state_ttl: float | None = None,
        learned: Callable[[], bool] | None = None,
        rejoin: Callable[[PacingState], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.wrapped = wrapped
        self.tuning = wrapped.tuning
        self.local = InMemoryPacingBackend(wrapped.tuning, clock=self._local_clock)
        """Paces this process while the shared side is out of reach, on the shared
        side's clock as last heard (``shift``): the pacer turns a backend's times into
        durations, so the clock must not jump by the two clocks' difference (a pause
        of 1.8e9 s, a round trip that wrecks the arrival spread)."""
        self.shift = 0.0  # the shared side's clock minus ours, as of its last reservation
        self.where = where
        self.errors: tuple[type[BaseException], ...] = (
            *errors,
            TimeoutError,
            asyncio.TimeoutError,
            UnusableSharedState,  # an answer of the wrong kind (``_answer``)
        )
        self.budget = budget
        self.fail_closed = fail_closed
        self.retry_every = retry_every
        self.state_ttl = state_ttl
        self._learned = learned or self._had_rate
        self._rejoin = rejoin or self._load_again
        self._clock = clock
        self._sleep = sleep
        self.on_fallback: list[Callable[[], None]] = []
        """Called each time the shared side becomes unreachable."""
        self.fallbacks = 0
        """Times this process lost the shared side and paced itself (or waited)."""
        self.down_since: float | None = None
        self.probe: asyncio.Task[None] | None = None
        """The rejoin probe under way, if any."""
        self.users = 0
        """Clients pacing with this backend (``attach``, ``reopen``): the last one's
        ``aclose`` closes it; an earlier one's leaves it to the others."""
        self.closed = False  # the last user closed: local pacing, no outage, no reconnecting
        self._closes = 0  # closes so far: a call begun before one paces locally
        self._next_probe = 0.0
        self._granted: deque[tuple[float, int]] = deque()  # (local time, slots) this second
        self._rate_heard = False  # the last shared answer had a rate (default ``learned``)

    @property
    def shared(self) -> bool:
        """True while the shared side answers (False: pacing locally after a failure)."""
        return self.down_since is None

    # -- the protocol -------------------------------------------------------------------

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        """``wrapped``'s slots; ``local``'s while it is out of reach."""
        got = await self.call(
            lambda: _answer(Reservation, self.wrapped.reserve(count, successes=successes, cap=cap))
        )
        if got is None:
            return await self.local.reserve(count, successes=successes, cap=cap)
        self._rate_heard = got.rate is not None
        now = self._clock()
        self.shift = got.now - now
        self.granted(now, got.count if got.rate is not None else 0)
        return got

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        """Report to ``wrapped``; to ``local`` while it is out of reach."""
        state = await self.call(
            lambda: _answer(PacingState, self.wrapped.report(feedback, cap=cap))
        )
        if state is None:
            return await self.local.report(feedback, cap=cap)
        self._rate_heard = state.limit is not None
        return state

    async def load(self) -> PacingState:
        """The shared state (the local one while the shared side is out of reach)."""
        state = await self.call(lambda: _answer(PacingState, self.wrapped.load()))
        return await self.local.load() if state is None else state

    async def aclose(self) -> None:
        """The last client using it closes: stop probing, then close ``wrapped``; calls
        in flight or made later pace locally (until ``reopen``); our own close is no
        outage.  While another client still uses it, nothing closes."""
        self.users = max(self.users - 1, 0)
        if self.users > 0:
            return
        self.closed = True
        self._closes += 1
        if self.probe is not None and not self.probe.done():
            self.probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.probe
        await self.wrapped.aclose()

    def reopen(self) -> None:
        """A client that closed it paces with it again (``async with`` once more)."""
        self.users += 1
        self.closed = False

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """One more client: count its fallbacks; ``wrapped`` gets the key (unless it was
        written before ``attach`` existed)."""
        attach = getattr(self.wrapped, "attach", None)
        if attach is not None:
            attach(key, on_fallback)
        self.users += 1
        self.on_fallback.append(on_fallback)

    # -- the policy ---------------------------------------------------------------------

    async def call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``call`` on the shared side within the budget; None means: use ``local``."""
        closes = self._closes
        while True:
            if self.closed or self._closes != closes:  # closed (a fail_closed wait ends)
                return None
            if self.down_since is not None and not self.fail_closed:
                self._maybe_probe()
                return None
            try:
                result = await self._within_budget(call())
            except asyncio.CancelledError:
                raise
            except self.errors as exc:
                if self.closed or self._closes != closes:
                    return None
                self._went_down(exc)
                if not self.fail_closed:
                    return None
                await self._sleep(self.retry_every)
                continue
            self._came_back()
            return result

    async def _within_budget(self, call: Awaitable[T]) -> T:
        if self.budget is None:
            return await call
        return await asyncio.wait_for(call, self.budget)

    def granted(self, now: float, slots: int) -> None:
        """This process took ``slots`` shared slots at ``now`` (its share, if it must
        pace alone)."""
        granted = self._granted
        granted.append((now, slots))
        while granted[0][0] < now - 1.0:
            granted.popleft()

    def _local_clock(self) -> float:
        return self._clock() + self.shift

    def _unshifted(self, state: PacingState) -> PacingState:
        """``state`` (the local one) with its times on this process's clock."""
        return attrs.evolve(state, **{name: getattr(state, name) - self.shift for name in _TIMES})

    def _had_rate(self) -> bool:
        return self._rate_heard

    async def _load_again(self, local: PacingState) -> None:
        await self._within_budget(_answer(PacingState, self.wrapped.load()))

    def _went_down(self, exc: BaseException) -> None:
        now = self._clock()
        self._next_probe = now + self.retry_every
        if self.down_since is not None:
            return
        self.down_since = now
        self.fallbacks += 1
        for callback in self.on_fallback:
            callback()
        what = "waiting for it" if self.fail_closed else "pacing locally until it answers"
        if isinstance(exc, UnusableSharedState):  # our own text: numbers, no secret
            what = "waiting" if self.fail_closed else "pacing locally"
            until = "valid again"
            if self.state_ttl is not None:
                until += f" or expires ({self.state_ttl:g} s after its last write)"
            logger.warning(
                "shared pacing: the state in %s is unusable (%s); %s until it is %s",
                self.where,
                exc,
                what,
                until,
            )
        else:  # the type only: an error's text may quote the URL or a server reply
            refused = "Authentication" in type(exc).__name__  # waiting will not mend it
            logger.warning(
                "shared pacing: %s %s (%s); %s",
                self.where,
                "refused our password (check the URL's)" if refused else "unreachable",
                type(exc).__name__,
                what,
            )
        if not self.fail_closed:
            self._seed_local(now)

    def _seed_local(self, now: float) -> None:
        """Pace locally from this process's recent share of the shared rate."""
        if not self._learned():
            self.local.state = PacingState()  # nothing learned yet: slow start locally
            return
        slots = sum(n for t, n in self._granted if t >= now - 1.0)
        share = max(float(slots), MIN_RATE)
        at = now + self.shift
        self.local.state = PacingState(
            limit=share,
            searching=False,
            origin=at,
            cut_at=at,
            recover=self.local.tuning.recover,
        )

    def _came_back(self) -> None:
        if self.down_since is None:
            return
        self.down_since = None
        logger.info("shared pacing: %s answers again; rejoined", self.where)

    def _maybe_probe(self) -> None:
        """While pacing locally: now and then, ask the shared side in the background."""
        if self.probe is not None and not self.probe.done():
            return
        now = self._clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self.retry_every

        async def probe() -> None:
            try:
                await self._rejoin(self._unshifted(self.local.state))
            except self.errors:
                return
            self._came_back()

        self.probe = asyncio.get_running_loop().create_task(probe())


async def _answer(kind: type[T], call: Awaitable[Any]) -> T:
    """``call``'s answer if it is a ``kind``; else ``UnusableSharedState`` (a custom
    backend's garbage is an outage, not a crash in the pacer or a false rejoin)."""
    answer = await call
    if not isinstance(answer, kind):
        raise UnusableSharedState(
            f"an answer of type {type(answer).__name__}, not a {kind.__name__}"
        )
    return answer
