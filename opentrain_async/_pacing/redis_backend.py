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

The scripts are ``_redis/lua/pacing_*.lua``, loaded by ``_redis.scripts.register``
(EVALSHA, and SCRIPT LOAD again on NOSCRIPT after a restart or flush).

Fail-open: if Redis cannot be reached, errors, or answers slower than ``budget``, the
backend falls back to an ``InMemoryPacingBackend`` (seeded with this process's recent
share of the shared rate), logs one warning, counts the fallback, and rejoins when a
background probe gets an answer.  ``fail_closed=True`` waits for Redis instead.  The
URL's password never appears in a repr, log record or exception: Redis errors are
reported by type only and never chained.

A shared state no pacer would write (a limit under ``MIN_RATE``, a schedule or pause
further ahead than the longest pause) is unusable (``check_shared_state``): the
process paces locally with a warning and stops writing the key, which then expires.
A client's ``rate_limit`` (``cap``) is its own: Redis never sees it (``ProcessCap``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

import opentrain_async._redis as _redis
from opentrain_async._errors import ConfigurationError
from opentrain_async._redis import scripts

from .backend import InMemoryPacingBackend, Reservation
from .curve import MIN_RATE, SEARCH_FLOOR
from .pause import WINDOW_HINT, WINDOW_SLOTS
from .process_cap import ProcessCap
from .shared_bounds import UnusableSharedState, check_shared_state
from .state import (
    SAMPLE_BUCKETS,
    SAMPLE_SECONDS,
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
    "backend_from_url",
    "client_backend",
    "pacing_key",
    "parse_pacing_url",
    "redact_url",
]

logger = logging.getLogger("opentrain_async")

PACING_URL_ENV = "OT_PACING_URL"
_KEY_PREFIX = "opentrain:pacing:"
_VERSION = "v"  # hash field bumped by every write ("0": nothing written yet, see _hand_back)
_FIRST_CALL_BUDGET = 2.0  # seconds: connect, handshake and script load (see _timed)

# -- the state as a Redis hash ---------------------------------------------------------


def _encode_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def encode_state(state: PacingState) -> dict[str, str]:
    """``PacingState`` as hash fields (every field a string; tuples comma-joined)."""
    return {f.name: _encode_value(getattr(state, f.name)) for f in attrs.fields(PacingState)}


def decode_state(fields: Mapping[str, str]) -> PacingState:
    """The hash back as a ``PacingState``; missing fields keep their defaults."""
    values: dict[str, Any] = {}
    default = PacingState()
    for f in attrs.fields(PacingState):
        text = fields.get(f.name)
        if text is None:
            continue
        kind = type(getattr(default, f.name))
        if f.name == "limit":
            values[f.name] = float(text) if text else None
        elif kind is bool:
            values[f.name] = text != "0"
        elif kind is tuple:
            numbers = [int(float(x)) for x in text.split(",") if x]
            values[f.name] = tuple(numbers[-SAMPLE_BUCKETS:]) + (0,) * max(
                0, SAMPLE_BUCKETS - len(numbers)
            )
        elif kind is int:
            values[f.name] = int(float(text))
        else:
            values[f.name] = float(text)
    return attrs.evolve(default, **values)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- URLs and keys ---------------------------------------------------------------------


def pacing_key(api_root: str, token: str) -> str:
    """The Redis key of one (API root, token) pair: a hash, never the token itself."""
    digest = hashlib.sha256(f"{api_root}\n{token}".encode()).hexdigest()[:32]
    return _KEY_PREFIX + "{" + digest + "}"  # a hash tag: keys derived from it share a slot


def redact_url(url: str) -> str:
    """``url`` without its password (``***``) or query, for reprs and messages."""
    return _redis.redact_url(url.strip(), keep_query=False)


@attrs.frozen
class RedisPacingOptions:
    """How the backend treats Redis; from the pacing URL's query or given directly.

    ``budget``: seconds a call may take before this process paces itself (fail-open)
    or, with ``fail_closed``, waits and tries again.  ``retry_every``: seconds between
    attempts to rejoin.  ``ttl``: seconds an unused key lives.
    """

    budget: float = 0.25
    fail_closed: bool = False
    retry_every: float = 1.0
    ttl: float = 600.0


_URL_OPTIONS = ("budget", "fail_closed", "retry_every")


def parse_pacing_url(url: str) -> tuple[str, RedisPacingOptions]:
    """Split a pacing URL into the Redis client's URL and our options.

    ``redis://``, ``rediss://`` (TLS) and ``unix://``; our options ride in the query
    (``?budget=0.1&fail_closed=true&retry_every=2``), the rest of the query is the Redis
    client's.  Errors name the field and never repeat the password.
    """
    try:
        parts = _redis.parse_redis_url(url.strip(), schemes=("redis", "rediss", "unix"))
    except _redis.RedisURLError as exc:
        raise ConfigurationError(
            f"pacing_url {redact_url(url)!r}: {exc} (expected redis://[:password@]host:6379/0)"
        ) from None
    ours: dict[str, Any] = {}
    rest = []
    for name, value in parts.query:
        if name not in _URL_OPTIONS:
            rest.append((name, value))
        elif name == "fail_closed":
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ConfigurationError(
                    f"pacing_url: fail_closed must be true or false, got {value!r}"
                )
            ours[name] = value.lower() in ("1", "true", "yes")
        else:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not 0 < number <= 60:
                raise ConfigurationError(
                    f"pacing_url: {name} must be seconds in (0, 60], got {value!r}"
                )
            ours[name] = number
    return parts.client_url(query=rest), RedisPacingOptions(**ours)


def _redis_from_url(url: str, options: RedisPacingOptions) -> Redis:
    try:
        _redis.require_redis("pacing_url")
    except _redis.MissingRedisExtra as exc:
        raise ConfigurationError(str(exc)) from None
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    try:
        redis = Redis.from_url(
            url, socket_timeout=options.budget, socket_connect_timeout=options.budget
        )
        # A query option the client does not take fails only when a connection is made
        # (a TypeError on every send): make one now, unconnected (no I/O).
        pool = redis.connection_pool
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, RedisError) as exc:
        # Its message may quote the URL: the kind of problem only, never the URL.
        raise ConfigurationError(
            f"pacing_url {redact_url(url)!r} was refused by the Redis client "
            f"({type(exc).__name__}: a value, or a query option it does not take)"
        ) from None
    return redis


# -- the backend -----------------------------------------------------------------------


class _Queued:
    """A report waiting for the next call, and the state it produced."""

    __slots__ = ("cap", "feedback", "result")

    def __init__(self, feedback: PacingFeedback, cap: float | None) -> None:
        self.feedback = feedback
        self.cap = cap
        self.result: PacingState | None = None


class RedisPacingBackend:
    """A ``PacingBackend`` in Redis, shared by every process that sends with one token.

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
        from redis.exceptions import RedisError

        # ValueError/ArithmeticError: an answer this process cannot use (see _checked).
        self._errors: tuple[type[BaseException], ...] = (
            RedisError,
            OSError,
            TimeoutError,
            asyncio.TimeoutError,  # not TimeoutError itself before Python 3.11
            ValueError,
            ArithmeticError,
        )
        self.tuning = tuning or PacingTuning(
            sync_every=SHARED_SYNC_EVERY, initial_window=SHARED_INITIAL_WINDOW
        )
        self.options = options or RedisPacingOptions()
        self.key = key
        self._redis = redis
        self._owns_redis = owns_redis
        self._display = display
        self._clock = clock
        self._sleep = sleep
        self._reserve_script = scripts.register(redis, "pacing_common", "pacing_reserve")
        self._report_script = scripts.register(redis, "pacing_common", "pacing_report")
        self._load_script = scripts.register(redis, "pacing_load")
        self._store_script = scripts.register(redis, "pacing_store")
        self._probe_script = scripts.register(redis, "pacing_probe")
        self.on_fallback: list[Callable[[], None]] = []
        """Called each time Redis becomes unreachable (the client counts these)."""
        self.fallbacks = 0
        """Times this process lost Redis and paced itself (or, fail-closed, waited)."""
        self._local = InMemoryPacingBackend(self.tuning, clock=clock)
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._last: tuple[PacingState, float, float] | None = None  # state, redis now, local
        self._granted: deque[tuple[float, int]] = deque()  # (local time, slots) this second
        # This process's rate_limit, kept out of Redis: one schedule per cap (clients
        # given one backend with different rate_limits each keep their own).
        self._caps: dict[float, ProcessCap] = {}
        self._uncapped = ProcessCap()
        self._paced = False  # the last answer from Redis had a rate
        self._connected = False  # a call has succeeded since the last failure
        self._known_at: float | None = None  # Redis time of the last answer
        self._report_lock = asyncio.Lock()
        self._queued: list[_Queued] = []
        self._closed = False  # aclose() ran: local pacing, no outage, no reconnecting

    def __repr__(self) -> str:
        return f"RedisPacingBackend(url={self._display!r}, key={self.key!r})"

    @property
    def shared(self) -> bool:
        """True while Redis answers (False: pacing locally after a failure)."""
        return self._down_since is None

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
        result: Reservation | None = await self._shared(
            lambda: self._reserve(count, successes, None)
        )
        if result is None:
            return await self._local.reserve(count, successes=successes, cap=cap)
        now = self._clock()
        self._known_at = result.now
        self._paced = result.rate is not None
        if cap is not None:
            result = own.take(result, now, cap, self.tuning)
        own.seen(result, now)
        granted = self._granted
        granted.append((now, result.count if result.rate is not None else 0))
        while granted[0][0] < now - 1.0:
            granted.popleft()
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
        result: PacingState | None = await self._shared(lambda: self._report(feedback, None))
        if result is None:
            return await self._local.report(feedback, cap=cap)
        return result

    async def load(self) -> PacingState:
        """The shared state (the local one while Redis is unreachable)."""
        result: tuple[PacingState, float, str] | None = await self._shared(self._load)
        if result is None:
            return await self._local.load()
        return result[0]

    async def aclose(self) -> None:
        """Stop probing; close the Redis client if this backend opened it.  Calls still
        in flight (or made later) pace locally: our own close is no Redis outage."""
        self._closed = True
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._owns_redis:
            with contextlib.suppress(*self._errors):
                await self._redis.aclose()

    # -- Redis calls --------------------------------------------------------------------

    def _key(self) -> str:
        if self.key is None:
            raise ConfigurationError(
                "RedisPacingBackend has no key: give key=, or pass it to OpenTrainClient "
                "(pacing_backend=...), which names it after its API root and token"
            )
        return self.key

    async def _reserve(self, count: int, successes: int, cap: float | None) -> Reservation:
        t = self.tuning
        raw = await self._timed(
            self._reserve_script,
            keys=[self._key()],
            args=[
                SAMPLE_BUCKETS,
                SAMPLE_SECONDS,
                count,
                successes,
                "" if cap is None else cap,
                t.beta,
                t.recover,
                t.doubling,
                t.tolerance,
                t.horizon,
                round(self.options.ttl * 1000),
                t.idle_after,
            ],
        )
        rate = _text(raw[4])
        reservation = Reservation(
            now=float(_text(raw[0])),
            first=float(_text(raw[1])),
            interval=float(_text(raw[2])),
            count=int(raw[3]),
            rate=float(rate) if rate else None,
            cuts=int(raw[5]),
            pause_until=float(_text(raw[6])),
        )
        numbers = (reservation.first, reservation.interval, reservation.rate or 1.0)
        if not all(math.isfinite(x) for x in numbers) or reservation.interval < 0:
            raise ValueError("the shared state gave a slot that is not a number")
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
            self.tuning, now, limit=state.limit, ahead=(state.tat, state.pause_until)
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
        result = await asyncio.wait_for(script(**kwargs), budget)
        self._connected = True
        return result

    async def _load(self) -> tuple[PacingState, float, str]:
        raw = await self._timed(self._load_script, keys=[self._key()], args=[])
        now = int(raw[0]) + int(raw[1]) / 1e6
        flat = [_text(x) for x in raw[2]]
        fields = dict(zip(flat[::2], flat[1::2], strict=False))
        state = self._checked(decode_state(fields), now)
        self._last = (state, now, self._clock())
        return state, now, fields.get(_VERSION, "0")

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
        t = self.tuning

        def arg(value: float | None) -> float | str:
            return "" if value is None else value

        args: list[Any] = [
            SAMPLE_BUCKETS,
            SAMPLE_SECONDS,
            t.beta,
            t.recover,
            t.doubling,
            t.max_pause,
            t.max_hint_pause,
            round(self.options.ttl * 1000),
            WINDOW_HINT,
            MIN_RATE,
            WINDOW_SLOTS,
            t.recover_round_trips,
            SEARCH_FLOOR,
        ]
        for queued in batch:
            feedback = queued.feedback
            args += [
                feedback.successes,
                "1" if feedback.throttled else "0",
                arg(feedback.throttled_at),
                arg(feedback.retry_after),
                arg(feedback.local_rate),
                arg(queued.cap),
            ]
        raw = await self._timed(self._report_script, keys=[self._key()], args=args)
        now = float(_text(raw[0]))
        flat = [_text(x) for x in raw[1]]
        state = self._checked(decode_state(dict(zip(flat[::2], flat[1::2], strict=False))), now)
        self._last = (state, now, self._clock())
        self._known_at = now
        self._paced = self._paced or state.limit is not None
        return state

    # -- fail-open / fail-closed --------------------------------------------------------

    async def _shared(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call`` on Redis within the budget; None means: use the local backend."""
        options = self.options
        while True:
            if self._closed:
                return None
            if self._down_since is not None and not options.fail_closed:
                self._maybe_probe()
                return None
            try:
                result = await call()
            except asyncio.CancelledError:
                raise
            except self._errors as exc:
                if self._closed:
                    return None
                self._went_down(exc)
                if not options.fail_closed:
                    return None
                await self._sleep(options.retry_every)
                continue
            self._came_back()
            return result

    def _went_down(self, exc: BaseException) -> None:
        self._connected = False
        now = self._clock()
        self._next_probe = now + self.options.retry_every
        if self._down_since is not None:
            return
        self._down_since = now
        self.fallbacks += 1
        for callback in self.on_fallback:
            callback()
        what = "waiting for it" if self.options.fail_closed else "pacing locally until it answers"
        if isinstance(exc, UnusableSharedState):  # our own text: numbers, no secret
            what = "waiting" if self.options.fail_closed else "pacing locally"
            logger.warning(
                "shared pacing: the state in Redis at %s is unusable (%s); %s until it is "
                "valid again or expires (%g s after its last write)",
                self._display,
                exc,
                what,
                self.options.ttl,
            )
        else:  # the type only: a Redis error's text may quote the URL or a server reply
            logger.warning(
                "shared pacing: Redis at %s unreachable (%s); %s",
                self._display,
                type(exc).__name__,
                what,
            )
        if not self.options.fail_closed:
            self._seed_local(now)

    def _seed_local(self, now: float) -> None:
        """Pace locally from this process's recent share of the shared rate."""
        last = self._last[0] if self._last is not None else None
        if not self._paced and (last is None or last.limit is None):
            self._local.state = PacingState()  # nothing learned yet: slow start locally
            return
        slots = sum(n for t, n in self._granted if t >= now - 1.0)
        share = max(float(slots), MIN_RATE)
        self._local.state = PacingState(
            limit=share, searching=False, origin=now, cut_at=now, recover=self.tuning.recover
        )

    async def _hand_back(self) -> None:
        """Redis answers again.  If it lost the state (a restart), give it what this
        process learned meanwhile, so the processes do not all start from scratch (only
        if nobody wrote first)."""
        key = self._key()
        await self._timed(self._probe_script, keys=[key + ":probe"], args=[1000])
        _, now, version = await self._load()
        local = self._local.state
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
        args: list[Any] = ["0", round(self.options.ttl * 1000)]
        for name, value in encode_state(seeded).items():
            args += [name, value]
        await self._timed(self._store_script, keys=[self._key()], args=args)

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        self._down_since = None
        logger.info("shared pacing: Redis at %s answers again; rejoined", self._display)

    def _maybe_probe(self) -> None:
        """While pacing locally: now and then, ask Redis in the background."""
        if self._probe is not None and not self._probe.done():
            return
        now = self._clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self.options.retry_every

        async def probe() -> None:
            try:
                await self._hand_back()
                # Idle connections from before the outage are dead (a restarted Redis):
                # drop them now, or the next call takes one and counts a second outage.
                pool = getattr(self._redis, "connection_pool", None)
                if pool is not None:
                    await pool.disconnect(inuse_connections=False)
            except self._errors:
                return
            self._came_back()

        self._probe = asyncio.get_running_loop().create_task(probe())


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
        _redis_from_url(client_url, options),
        tuning=tuning,
        options=options,
        owns_redis=True,
        display=redact_url(url),
        clock=clock,
        sleep=sleep,
    )


def client_backend(
    *,
    pacer_given: bool,
    backend: Any,
    pacing_url: str | None,
    fail_closed: bool | None,
    env: Mapping[str, str],
    api_root: str,
    token: str,
    on_fallback: Callable[[], None],
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[Any]],
) -> Any:
    """The backend ``OpenTrainClient`` paces with: ``backend`` if given, else one for
    ``pacing_url`` or ``$OT_PACING_URL`` ("" turns the variable off), else None (in
    memory).  A Redis backend gets the key of this API root and token."""
    if pacing_url is not None and not isinstance(pacing_url, str):
        raise ConfigurationError(
            f"pacing_url must be a redis:// URL string, got {type(pacing_url).__name__}"
        )
    if pacer_given or backend is not None:
        if pacing_url or fail_closed is not None:  # both would be silently ignored
            raise ConfigurationError(
                "pass pacing_url/pacing_fail_closed, or pacer/pacing_backend, not both "
                "(a RedisPacingBackend takes options=RedisPacingOptions(fail_closed=...))"
            )
    else:
        url = pacing_url if pacing_url is not None else env.get(PACING_URL_ENV)
        if url and url.strip():
            backend = backend_from_url(url, fail_closed=fail_closed, clock=clock, sleep=sleep)
    if isinstance(backend, RedisPacingBackend):
        if backend.key is None:
            backend.key = pacing_key(api_root, token)
        backend.on_fallback.append(on_fallback)
    return backend
