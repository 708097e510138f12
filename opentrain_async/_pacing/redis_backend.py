"""Many processes, one token: the pacing state in Redis (a second ``PacingBackend``).

Every process sending with one token keeps its ``Pacer`` (queue, slow-start window) and
shares one ``PacingState``, a Redis hash, under a key named by a hash of the API root and
the token (never the token itself) that expires when unused.  Time is Redis ``TIME``, so
processes whose clocks disagree still agree on the schedule (a pacer only ever turns
backend times into durations).

* ``reserve`` is one Lua script, one round trip per batch: it counts the successes the
  pacer saw since its last call and reserves the next slots at the *shared* rate (GCRA,
  honouring the shared pause-until).  It mirrors ``backend.apply_reserve`` (the curve's
  rate, ``schedule.restart_if_idle`` and ``reserve_slots``, ``samples.record``); a test
  holds the two to the same answers over random states, so a change to one of those
  functions fails it until the script follows.
* ``report`` (a 429 and its hint, successes) is one more script, one round trip: it
  mirrors ``backend.apply_report`` (``pause.learn_window`` and ``on_hint``,
  ``curve.first_cut``, ``cut`` and ``freeze``, ``samples.accepted_rate``), held to it by
  the same kind of test.  So an episode cuts once whichever processes see its 429s
  (a 429 for a slot handed out before the cut is that cut's), and an exact hint's
  pause holds every process back.  (It was an optimistic transaction, read then write
  if nobody wrote meanwhile: with every process reserving each few milliseconds, the
  first 429s of eight processes took 20-190 ms to land, retrying.)

Where the rest lives: the scripts are ``_redis/lua/pacing_*.lua`` (loaded by
``_redis.scripts.register``: EVALSHA, SCRIPT LOAD again after a restart or flush), their
arguments and answers ``redis_scripts``, the state as a hash ``redis_state``, the URL,
options and key ``redis_options``.

Two classes: ``RedisStateBackend`` is the state in Redis, each failure raised;
``RedisPacingBackend`` is ``fallback.PacingFallback`` (the policy over any backend) over
it.  Fail-open: if Redis cannot be reached, errors, or answers slower than ``budget``,
the backend paces with an ``InMemoryPacingBackend`` (seeded with this process's recent
share of the shared rate), logs one warning, counts the fallback, and rejoins when a
background probe gets an answer, handing back what it learned meanwhile if Redis lost
the state.
``fail_closed=True`` waits for Redis instead.  The URL's password never appears in a
repr, log record or exception: Redis errors are reported by type only and never chained.

A shared state no pacer would write (a limit under ``MIN_RATE``, a schedule or pause
further ahead than the longest pause) is unusable (``check_shared_state``): the
process paces locally with a warning and stops writing the key, which then expires.
A client's ``rate_limit`` (``cap``) is its own: Redis never sees it (``ProcessCap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from opentrain_async._errors import ConfigurationError
from opentrain_async._redis import scripts
from opentrain_async._redis.connect import blocking_client

from . import redis_scripts
from .backend import Reservation
from .fallback import PacingFallback
from .process_cap import ProcessCap
from .redis_options import (
    PACING_URL_ENV,
    RedisPacingOptions,
    pacing_key,
    parse_pacing_url,
    redact_url,
    redis_from_url,
)
from .redis_state import VERSION, decode_state, encode_state
from .shared_bounds import UnusableSharedState, check_shared_state
from .state import (
    SHARED_INITIAL_WINDOW,
    SHARED_SYNC_EVERY,
    PacingFeedback,
    PacingState,
    PacingTuning,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "PACING_URL_ENV",
    "RedisPacingBackend",
    "RedisPacingOptions",
    "RedisStateBackend",
    "backend_from_url",
    "decode_state",
    "encode_state",
    "pacing_key",
    "parse_pacing_url",
    "redact_url",
]


_FIRST_CALL_BUDGET = 2.0  # seconds: connect, handshake and script load (see _timed)

# -- the backend -----------------------------------------------------------------------


def _unreachable_errors() -> tuple[type[BaseException], ...]:
    """What makes this process pace locally: Redis failing, or slower than the budget;
    ValueError/ArithmeticError, an answer it cannot use (see ``_checked``)."""
    from redis.exceptions import RedisError

    return (
        RedisError,
        OSError,
        TimeoutError,
        asyncio.TimeoutError,  # not TimeoutError itself before Python 3.11
        ValueError,
        ArithmeticError,
    )


class _Queued:
    """A report waiting for the next call, and the state it produced."""

    __slots__ = ("cap", "feedback", "result")

    def __init__(self, feedback: PacingFeedback, cap: float | None) -> None:
        self.feedback = feedback
        self.cap = cap
        self.result: PacingState | None = None


class RedisStateBackend:
    """The pacing state in Redis, as a bare ``PacingBackend``: every failure raises
    (``errors``), a round trip slower than the budget too.  ``RedisPacingBackend`` is
    this behind the fallback policy; use this one only to wrap it in your own.

    ``redis`` is a ``redis.asyncio.Redis``; ``key`` defaults to the one the client
    names (``attach``).  ``tuning`` must be the same in every process.  ``clock`` is
    the local clock (a process's own ``rate_limit`` is paced on it).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        key: str | None = None,
        tuning: PacingTuning | None = None,
        options: RedisPacingOptions | None = None,
        owns_redis: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (why := blocking_client(redis, "the Redis pacing backend")) is not None:
            raise ConfigurationError(why)  # every send would fail: refused here
        self.errors = _unreachable_errors()
        """What means Redis is out of reach (or its answer unusable)."""
        self.tuning = tuning or PacingTuning(
            sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW
        )
        self.options = options or RedisPacingOptions()
        self.key = key
        self._redis = redis
        self._owns_redis = owns_redis
        self._clock = clock
        self._reserve_script = scripts.register(redis, "pacing_common", "pacing_reserve")
        self._report_script = scripts.register(redis, "pacing_common", "pacing_report")
        self._load_script = scripts.register(redis, "pacing_load")
        self._store_script = scripts.register(redis, "pacing_store")
        self._probe_script = scripts.register(redis, "pacing_probe")
        self._last: tuple[PacingState, float, float] | None = None  # state, redis now, local
        # This process's rate_limit, kept out of Redis: one schedule per cap (clients
        # given one backend with different rate_limits each keep their own).
        self._caps: dict[float, ProcessCap] = {}
        self._uncapped = ProcessCap()
        self._paced = False  # the last answer from Redis had a rate
        self._connected = False  # a call has succeeded since the last failure
        self._known_at: float | None = None  # Redis time of the last answer
        self._report_lock = asyncio.Lock()
        self._queued: list[_Queued] = []

    # -- the protocol -------------------------------------------------------------------

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        """Count ``successes``, then reserve up to ``count`` slots at the shared rate.

        ``cap`` (the client's ``rate_limit``) limits this process only: the schedule in
        Redis never sees it (a neighbour capped at 1/s does not slow the others), and
        this process takes shared slots no faster than its cap (``ProcessCap``)."""
        own = self._caps.setdefault(cap, ProcessCap()) if cap is not None else self._uncapped
        if cap is not None:
            held = own.wait(self._clock(), cap, self.tuning)
            if held is not None:  # not due under our own cap: Redis is not asked
                own.carried += successes
                return held
            count = min(count, own.slots(self._clock(), cap, self.tuning))
        successes, own.carried = successes + own.carried, 0
        result = await self._reserve(count, successes, None)
        now = self._clock()
        self._known_at = result.now
        self._paced = result.rate is not None
        if cap is not None:
            result = own.take(result, now, cap, self.tuning)
        own.seen(result, now)
        return result

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        """Apply a 429 (pause, one cut per episode) or successes to the shared state.

        Before the limit is known a process admits on its own (slow start) and hears
        from Redis only now and then: a request it admitted after another process's
        429 had set a pause, but before it heard of it, is judged as of when it last
        heard (part of the same burst: it does not lengthen the pause as a new one
        would).  Paced requests were admitted on slots from Redis: judged as they are."""
        known = self._known_at
        if not self._paced and feedback.throttled_at is not None and known is not None:
            feedback = attrs.evolve(feedback, throttled_at=min(feedback.throttled_at, known))
        # The cap is this process's (see reserve): the shared cut never draws on it.
        return await self._report(feedback, None)

    async def load(self) -> PacingState:
        """The shared state."""
        return (await self._load())[0]

    async def aclose(self) -> None:
        """Close the Redis client if this backend opened it."""
        if self._owns_redis:
            with contextlib.suppress(*self.errors):
                await self._redis.aclose()

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """The client's key for its API root and token, unless one was given.  (This
        backend never falls back: its failures raise.)"""
        if self.key is None:
            self.key = key

    # -- Redis calls --------------------------------------------------------------------

    def _key(self) -> str:
        if self.key is None:
            raise ConfigurationError(
                "RedisPacingBackend has no key: give key=, or pass it to OpenTrainClient "
                "(pacing_backend=...), which names it after its API root and token"
            )
        return self.key

    async def _reserve(self, count: int, successes: int, cap: float | None) -> Reservation:
        args = redis_scripts.reserve_args(self.tuning, self.options.ttl, count, successes, cap)
        raw = await self._timed(self._reserve_script, keys=[self._key()], args=args)
        reservation = redis_scripts.reservation(raw)
        check_shared_state(
            self.tuning,
            reservation.now,
            rate=None if cap is not None else reservation.rate,
            ahead=(reservation.first, reservation.pause_until),
        )
        return reservation

    def _checked(self, state: PacingState, now: float) -> PacingState:
        """``state`` if every number in it is usable; else ValueError (so this process
        paces locally, as when Redis is unreachable, instead of waiting on NaN)."""
        values = [getattr(state, f.name) for f in attrs.fields(PacingState)]
        if any(isinstance(v, float) and math.isnan(v) for v in values):
            raise UnusableSharedState("a value that is not a number")
        check_shared_state(
            self.tuning,
            now,
            limit=state.limit,
            ahead=(state.tat, state.pause_until),
            window_hint=state.window_hint,
        )
        return state

    async def _timed(self, script: Any, **kwargs: Any) -> Any:
        """One round trip, within the budget (a slower Redis counts as unreachable).

        Until a call has succeeded on this connection, the budget is at least
        ``_FIRST_CALL_BUDGET``: connecting, the client's handshake and loading the script
        take several round trips, often while every process starts at once."""
        budget = self.options.budget
        if not self._connected:
            budget = max(budget, _FIRST_CALL_BUDGET)
        try:
            result = await asyncio.wait_for(script(**kwargs), budget)
        except self.errors:
            self._connected = False
            raise
        self._connected = True
        return result

    async def _load(self) -> tuple[PacingState, float, str]:
        raw = await self._timed(self._load_script, keys=[self._key()], args=[])
        fields, now = redis_scripts.loaded_fields(raw)
        state = self._checked(decode_state(fields), now)
        self._last = (state, now, self._clock())
        return state, now, fields.get(VERSION, "0")

    async def _report(self, feedback: PacingFeedback, cap: float | None) -> PacingState:
        """Reports waiting in this process go in one call: a burst of 429s costs one
        round trip (and one connection), not one each."""
        entry = _Queued(feedback, cap)
        self._queued.append(entry)
        async with self._report_lock:
            if entry.result is None:
                batch, self._queued = self._queued, []
                try:
                    state = await self._report_batch(batch)
                except BaseException:
                    self._queued[:0] = [e for e in batch if e is not entry]
                    raise
                for queued in batch:
                    queued.result = state
        assert entry.result is not None
        return entry.result

    async def _report_batch(self, batch: list[_Queued]) -> PacingState:
        """One script, one round trip: ``apply_report`` in Redis for each feedback
        (the first 429 starts the search from ``samples.first_estimate``: what got
        through for every process, not only for the one that saw it)."""
        batch_args = [(queued.feedback, queued.cap) for queued in batch]
        args = redis_scripts.report_args(self.tuning, self.options.ttl, batch_args)
        raw = await self._timed(self._report_script, keys=[self._key()], args=args)
        state, now = redis_scripts.reported_state(raw)
        state = self._checked(state, now)
        self._last = (state, now, self._clock())
        self._known_at = now
        self._paced = self._paced or state.limit is not None
        return state

    # -- fail-open: what PacingFallback needs ------------------------------------------

    def learned(self) -> bool:
        """The shared state had a rate when last heard (else: slow start locally)."""
        last = self._last[0] if self._last is not None else None
        return self._paced or (last is not None and last.limit is not None)

    async def rejoin(self, local: PacingState) -> None:
        """The probe while pacing locally: hand the state back, drop dead connections."""
        await self._hand_back(local)
        # Idle connections from before the outage are dead (a restarted Redis):
        # drop them now, or the next call takes one and counts a second outage.
        pool = getattr(self._redis, "connection_pool", None)
        if pool is not None:
            await pool.disconnect(inuse_connections=False)

    async def _hand_back(self, local: PacingState) -> None:
        """Redis answers again.  If it lost the state (a restart), give it what this
        process learned meanwhile, so the processes do not all start from scratch (only
        if nobody wrote first)."""
        key = self._key()
        await self._timed(self._probe_script, keys=[key + ":probe"], args=[1000])
        _, now, version = await self._load()
        if version != "0" or local.limit is None:
            return
        shift = now - self._clock()
        moved = {
            name: getattr(local, name) + shift
            for name in ("origin", "cut_at", "pause_until", "pause_began", "tat")
        }
        seeded = attrs.evolve(
            PacingState(),
            limit=local.limit,
            searching=local.searching,
            recover=local.recover,
            cuts=local.cuts,
            **moved,
        )
        args = redis_scripts.store_args(seeded, self.options.ttl)
        await self._timed(self._store_script, keys=[self._key()], args=args)


class RedisPacingBackend(PacingFallback):
    """A ``PacingBackend`` in Redis, shared by every process that sends with one token;
    fail-open: the ``PacingFallback`` policy over a ``RedisStateBackend``.

    ``redis`` is a ``redis.asyncio.Redis`` (the ``redis`` extra).  ``key`` defaults to
    the one ``OpenTrainClient`` derives from its API root and token when given this
    backend.  ``tuning`` must be the same in every process (its default checks in every
    ``SHARED_SYNC_EVERY`` before any limit is known, so a 429 one process saw holds
    the others back within milliseconds, and starts each process with
    ``SHARED_INITIAL_WINDOW`` request in flight).  ``clock`` is the local
    clock used while Redis is unreachable; ``sleep`` the wait between attempts with
    ``fail_closed``.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        key: str | None = None,
        tuning: PacingTuning | None = None,
        options: RedisPacingOptions | None = None,
        owns_redis: bool = False,
        display: str = "<redis client>",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        options = options or RedisPacingOptions()
        self.in_redis = RedisStateBackend(
            redis, key=key, tuning=tuning, options=options, owns_redis=owns_redis, clock=clock
        )
        """The state in Redis, without the fallback (its budget is its own: ``_timed``)."""
        super().__init__(
            self.in_redis,
            where=f"Redis at {display}",
            errors=self.in_redis.errors,
            fail_closed=options.fail_closed,
            retry_every=options.retry_every,
            state_ttl=options.ttl,
            learned=self.in_redis.learned,
            rejoin=self.in_redis.rejoin,
            clock=clock,
            sleep=sleep,
        )
        self.options = options
        self._display = display

    def __repr__(self) -> str:
        return f"RedisPacingBackend(url={self._display!r}, key={self.key!r})"

    @property
    def key(self) -> str | None:
        """The hash's key in Redis (None until given, or named by the client)."""
        return self.in_redis.key

    @key.setter
    def key(self, key: str | None) -> None:
        self.in_redis.key = key


def backend_from_url(
    url: str,
    *,
    tuning: PacingTuning | None = None,
    fail_closed: bool | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> RedisPacingBackend:
    """A ``RedisPacingBackend`` for a pacing URL (it owns, and closes, its Redis client)."""
    client_url, options = parse_pacing_url(url)
    if fail_closed is not None:
        options = attrs.evolve(options, fail_closed=fail_closed)
    return RedisPacingBackend(
        redis_from_url(client_url, options),
        tuning=tuning,
        options=options,
        owns_redis=True,
        display=redact_url(url),
        clock=clock,
        sleep=sleep,
    )
