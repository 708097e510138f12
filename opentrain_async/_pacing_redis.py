"""One limit shared by many processes: the pacer's state in Redis.

Every process that sends with one token asks Redis, in one atomic Lua script per round
trip, for its next start times (GCRA over the *shared* rate, honouring the shared
pause-until) and hands back what happened since its last call (successes, 429s with their
hints).  The same script applies that feedback before it reserves, so one 429 cuts the
shared rate once per episode whichever process saw it, and the pause from an exact hint
holds every process back.  Time is Redis ``TIME``: machines whose clocks disagree still
agree on the schedule, because a process only ever turns Redis times into durations.

Cheap when nothing is throttled: while no limit is known and nothing is paused, one reply
is a lease (``lease`` seconds) during which the process admits requests without asking.
Once paced, each call reserves the slots due within ``horizon`` for as many requests as
are waiting (a small batch), so the round trip is paid per batch, not per request.

Fail-open: if Redis cannot be reached, errors, or answers slower than ``budget``, the
process paces itself with an in-memory ``Pacer`` (seeded with its recent share of the
rate), logs one warning, counts the fallback, and rejoins on its own once Redis answers
again.  ``fail_closed=True`` makes it wait for Redis instead.  The URL's password never
appears in a repr, a log record or an exception (Redis errors are never chained).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

from ._errors import ConfigurationError
from ._pacing import InMemoryPacingStore, Pacer, PacingState

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "PACING_URL_ENV",
    "RedisPacer",
    "RedisPacingOptions",
    "pacing_key",
    "parse_pacing_url",
    "redact_url",
    "shared_pacer",
]

logger = logging.getLogger("opentrain_async")

PACING_URL_ENV = "OT_PACING_URL"
_KEY_PREFIX = "opentrain:pacing:"

# KEYS[1]: the shared state (a hash).  ARGV: want, successes since the last call, the
# stated rate (0: none), beta, recover, doubling, max_pause, max_exact_pause, window,
# ttl (s), horizon (s), lease (s), the number of 429s, then (sent_at_us, hint) per 429
# (hint -1: none).  Returns {now_us, first_us, interval_us (0: unpaced), granted,
# pause_until_us, limit (string, "" if none), searching, throttles, lease_until_us}.
# Times are Redis TIME in microseconds (integers are exact in Lua's doubles).
_SCRIPT = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = tonumber(ARGV[1])
local oks = tonumber(ARGV[2])
local stated = tonumber(ARGV[3])
local beta = tonumber(ARGV[4])
local recover0 = tonumber(ARGV[5])
local doubling = tonumber(ARGV[6])
local max_pause = tonumber(ARGV[7])
local max_exact = tonumber(ARGV[8])
local window = tonumber(ARGV[9])
local ttl = tonumber(ARGV[10])
local horizon = tonumber(ARGV[11]) * 1e6
local lease = tonumber(ARGV[12]) * 1e6
local nthr = tonumber(ARGV[13])

local f = redis.call('HMGET', key, 'tat', 'pu', 'lim', 'cut', 'srch', 'rec', 'st', 'ok',
  'okcut', 'streak', 'pb', 'thr')
local tat = tonumber(f[1]) or 0
local pu = tonumber(f[2]) or 0
local lim = tonumber(f[3])
local cut = tonumber(f[4])
local srch = tonumber(f[5]) or 1
local rec = tonumber(f[6]) or recover0
local st = tonumber(f[7]) or now
local ok = tonumber(f[8]) or 0
local okcut = tonumber(f[9]) or 0
local streak = tonumber(f[10]) or 0
local pb = tonumber(f[11]) or 0
local thr = tonumber(f[12]) or 0

-- Successes, counted in 50 ms buckets (a ring of 20) for the accepted rate.
local bucket = math.floor(now / 50000)
if oks > 0 then
  ok = ok + oks
  streak = 0
  local slot = bucket % 20
  local f2 = redis.call('HMGET', key, 'bi' .. slot, 'bn' .. slot)
  local n = oks
  if tonumber(f2[1]) == bucket then n = n + (tonumber(f2[2]) or 0) end
  redis.call('HSET', key, 'bi' .. slot, bucket, 'bn' .. slot, n)
end

local function rate_at(at)
  if lim == nil or cut == nil then
    if stated > 0 then return stated end
    return nil
  end
  local dt = math.max(0, (at - cut) / 1e6)
  local r
  if srch == 1 then
    r = lim * 2 ^ math.min(dt / doubling, 30)
  else
    local c = (1 - beta) / rec ^ 3
    r = lim * (1 + c * (math.min(dt, 60) - rec) ^ 3)
  end
  if stated > 0 and r > stated then r = stated end
  return r
end

local function accepted(at, span)
  -- Time before the start and a pause that is over do not count; a pause still on
  -- (set by another 429 meanwhile) does not empty the window.
  local from = math.max(at - span * 1e6, st)
  if pu <= at then from = math.max(from, pu) end
  local count = 0
  for slot = 0, 19 do
    local g = redis.call('HMGET', key, 'bi' .. slot, 'bn' .. slot)
    local b = tonumber(g[1])
    if b ~= nil then
      -- The part of the bucket inside the window (successes spread evenly over it).
      local s0 = b * 50000
      local e0 = math.min(s0 + 50000, at)
      if e0 > from and e0 > s0 then
        count = count + (tonumber(g[2]) or 0) * (e0 - math.max(s0, from)) / (e0 - s0)
      end
    end
  end
  return count / math.max((at - from) / 1e6, 1e-3)
end

for i = 0, nthr - 1 do
  local sent = tonumber(ARGV[14 + 2 * i])
  local hint = tonumber(ARGV[15 + 2 * i])
  thr = thr + 1
  local pause_end = now
  if hint > 0 then
    -- A fractional hint is exact: everyone waits it out.  A whole-second one may be
    -- rounded up: a short pause, doubling while 429s come back to back.
    local exact = hint ~= math.floor(hint)
    if sent >= pb then streak = streak + 1 end
    local cap = max_exact
    if not exact then cap = max_pause * 2 ^ (math.max(streak, 1) - 1) end
    pause_end = now + math.min(hint, cap) * 1e6
    if pause_end > pu then pb = now end
  end
  if lim == nil or cut == nil then
    lim = math.max(ok / math.max((now - st) / 1e6, 0.1), 1)
    cut = math.max(pause_end, pu)
    srch = 1
  elseif sent > cut and ok > okcut and not (srch == 1 and now - cut < doubling * 1e6) then
    -- One cut per episode, whichever process saw the 429.
    local r = rate_at(now) or lim
    local span = math.min(math.max(window, math.max(hint, 0)), 1.0)
    lim = math.max(math.min(r, accepted(now, span)), 0.5)
    cut = math.max(pause_end, pu)
    okcut = ok
    srch = 0
    rec = math.min(math.max(recover0, 1.5 * math.max(hint, 0)), math.max(recover0, 2.0))
  elseif pause_end > math.max(pu, now) then
    cut = cut + pause_end - math.max(pu, now)
  end
  pu = math.max(pu, pause_end)
end

local rate = rate_at(now)
local first = math.max(now, pu)
local interval = 0
local granted = 0
local lease_until = 0
if rate == nil then
  granted = want
  if pu <= now then lease_until = now + lease end
else
  interval = 1e6 / rate
  -- GCRA: an on-time caller keeps the cadence; after idling the schedule restarts now.
  if now - tat < interval then first = math.max(first, tat) end
  if want > 0 and first <= now + horizon then
    granted = math.min(want, math.floor((now + horizon - first) / interval) + 1)
    tat = first + granted * interval
  end
end

redis.call('HSET', key, 'tat', tat, 'pu', pu, 'st', st, 'ok', ok, 'okcut', okcut,
  'streak', streak, 'pb', pb, 'thr', thr, 'srch', srch, 'rec', rec)
if lim ~= nil then redis.call('HSET', key, 'lim', lim, 'cut', cut) end
redis.call('PEXPIRE', key, math.floor(ttl * 1000 + math.max(0, pu - now) / 1000))
local limtext = ''
if lim ~= nil then limtext = tostring(lim) end
return {now, math.floor(first), math.floor(interval), granted, pu, limtext, srch, thr,
  lease_until}
"""


def pacing_key(api_root: str, token: str) -> str:
    """The Redis key of one (API origin, token) pair: a hash, never the token itself."""
    digest = hashlib.sha256(f"{api_root}\n{token}".encode()).hexdigest()[:32]
    return _KEY_PREFIX + digest


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for reprs and messages)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
            # A lone userinfo is the password in redis URLs (redis://secret@host).
            netloc = f"{user}:***@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparseable pacing URL>"


@attrs.frozen
class RedisPacingOptions:
    """How a ``RedisPacer`` talks to Redis; parsed from a pacing URL or given directly.

    ``budget`` is the longest a call may take before the process paces itself locally
    (fail-open) or, with ``fail_closed``, keeps waiting for Redis.
    """

    budget: float = 0.25
    fail_closed: bool = False
    retry_every: float = 1.0
    """Seconds between attempts to rejoin Redis after a failure."""
    lease: float = 0.01
    """Unpaced: seconds a process admits requests on one answer."""
    horizon: float = 0.02
    """Paced: how far ahead one call may reserve slots."""
    ttl: float = 600.0
    """Seconds an unused key lives."""


_URL_OPTIONS = {"budget", "fail_closed", "retry_every"}


def parse_pacing_url(url: str) -> tuple[str, RedisPacingOptions]:
    """Split a pacing URL into the URL for the Redis client and our options.

    Accepts ``redis://``, ``rediss://`` and ``unix://``; our options ride in the query
    (``?budget=0.1&fail_closed=true``), the rest of the query is the Redis client's.
    Errors name the field and never repeat the password.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (validates the port)
    except ValueError:
        raise ConfigurationError(
            f"pacing_url: not a valid URL: {redact_url(url)!r} (expected redis://host:6379/0)"
        ) from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"pacing_url: scheme must be redis://, rediss:// or unix://, got {parts.scheme!r}"
        )
    ours: dict[str, Any] = {}
    rest = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _URL_OPTIONS:
            rest.append((name, value))
        elif name == "fail_closed":
            if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ConfigurationError(
                    f"pacing_url: fail_closed must be true or false: {value!r}"
                )
            ours[name] = value.lower() in ("1", "true", "yes")
        else:
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not 0 < number <= 60:
                raise ConfigurationError(
                    f"pacing_url: {name} must be a number of seconds in (0, 60], got {value!r}"
                )
            ours[name] = number
    client_url = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(rest, quote_via=quote), "")
    )
    return client_url, RedisPacingOptions(**ours)


def redis_from_url(url: str, options: RedisPacingOptions) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (the ``redis`` extra), with the budget as its
    socket timeouts."""
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise ConfigurationError(
            'pacing_url needs the redis extra: pip install "opentrain-async[redis]"'
        ) from None
    try:
        return Redis.from_url(
            url,
            socket_timeout=options.budget,
            socket_connect_timeout=options.budget,
            retry_on_timeout=False,
        )
    except (ValueError, TypeError) as exc:
        # The message may quote the URL: say what kind of problem, never the URL.
        raise ConfigurationError(
            f"pacing_url {redact_url(url)!r} rejected by the Redis client ({type(exc).__name__})"
        ) from None


class _Reply:
    """One answer of the script, with local clock times for its Redis times."""

    __slots__ = ("first", "granted", "interval", "lease_until", "limit", "now", "pause_until")

    def __init__(self, raw: list[Any], local_now: float) -> None:
        redis_now = int(raw[0])
        # Redis time -> this process's clock: only differences are used, so skew between
        # machines (or an injected clock) cancels out.
        offset = local_now - redis_now / 1e6
        self.now = redis_now / 1e6
        self.first = int(raw[1]) / 1e6 + offset
        self.interval = int(raw[2]) / 1e6
        self.granted = int(raw[3])
        self.pause_until = int(raw[4]) / 1e6 + offset
        limit = raw[5].decode() if isinstance(raw[5], bytes) else str(raw[5])
        self.limit = float(limit) if limit else None
        lease = int(raw[8])
        self.lease_until = lease / 1e6 + offset if lease else 0.0


class RedisPacer:
    """A pacer whose state lives in Redis, shared by every process using one token.

    Same face toward the client as ``Pacer`` (``try_acquire``/``acquire``/``on_success``/
    ``on_throttle``/``on_error``/``describe``).  Admission times it returns are Redis
    times (seconds), so a 429 reported by any process is judged on one timeline.
    """

    def __init__(
        self,
        redis: Redis,
        key: str,
        *,
        rate_limit: float | None = None,
        options: RedisPacingOptions | None = None,
        owns_redis: bool = False,
        url_for_display: str = "<redis client>",
        on_fallback: Callable[[], None] | None = None,
        initial_window: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError("rate_limit must be a positive number of requests per second")
        self._redis = redis
        self._key = key
        self.options = options or RedisPacingOptions()
        self.rate_limit = rate_limit
        self._clock = clock
        self._sleep = sleep
        self._local_store = InMemoryPacingStore()
        self._local = Pacer(rate_limit, store=self._local_store, clock=clock, sleep=sleep)
        self._owns_redis = owns_redis
        self._display = url_for_display
        self._on_fallback = on_fallback
        self._script: Any = None
        # Feedback not yet told to Redis.
        self._pending_ok = 0
        self._pending_429: list[tuple[int, float]] = []
        # Requests waiting for a start time: each future gets a local clock time, or
        # None ("Redis is unreachable: pace locally").
        self._waiters: deque[asyncio.Future[tuple[float, bool] | None]] = deque()
        # Before the first 429: a slow-start window of requests in flight per process.
        self._in_flight = 0
        self._cwnd: float = initial_window
        self._window_waiters: deque[asyncio.Future[None]] = deque()
        self._wake = asyncio.Event()
        self._driver: asyncio.Task[None] | None = None
        self._lease_until = 0.0
        self._last: _Reply | None = None
        self._reply_local_now = 0.0
        self._admitted_local: Counter[float] = Counter()
        # Fail-open: since when Redis is unreachable (None: it answers).
        self._down_since: float | None = None
        self._next_try = 0.0
        self._probe: asyncio.Task[None] | None = None
        self.fallbacks = 0
        """Times this process lost Redis and paced itself."""
        self._recent: deque[float] = deque()  # own admissions within the last second

    def __repr__(self) -> str:
        return f"RedisPacer(url={self._display!r}, key={self._key!r})"

    # -- the client's side --------------------------------------------------------------

    @property
    def shared(self) -> bool:
        """True while the shared state in Redis decides (False: pacing locally)."""
        return self._down_since is None

    @property
    def state(self) -> PacingState:
        """What the last answer said about the shared limit (limit and pause only)."""
        reply = self._last
        if reply is None:
            return PacingState()
        return PacingState(limit=reply.limit, pause_until=reply.pause_until)

    def current_rate(self, now: float | None = None) -> float | None:
        """The shared rate at the last answer, or None when unpaced."""
        reply = self._last
        if self._down_since is not None:
            return self._local.current_rate(now)
        if reply is None or not reply.interval:
            return self.rate_limit if reply is None else None
        return 1.0 / reply.interval

    def describe(self) -> str:
        """A short human description of the current pace (for progress displays)."""
        if self._down_since is not None:
            return self._local.describe() + " (local: Redis unreachable)"
        rate = self.current_rate()
        return "unpaced (shared)" if rate is None else f"{rate:,.0f}/s (shared)"

    def try_acquire(self) -> float | None:
        """Admit at once while a lease holds (unpaced, nothing paused) and the slow-start
        window has room; else None (``await acquire()``)."""
        if self._down_since is None and not self._waiters and self._in_flight < self._cwnd:
            now = self._clock()
            if now < self._lease_until:
                return self._admit_shared(now)
        return None

    async def acquire(self) -> float:
        """Wait until the next request may start; returns its admission time."""
        while True:
            if self._down_since is not None and not self.options.fail_closed:
                self._maybe_rejoin()
                if self._down_since is not None:
                    return await self._acquire_local()
            now = self._clock()
            if self._down_since is None and now < self._lease_until and not self._waiters:
                if self._in_flight < self._cwnd:
                    return self._admit_shared(now)
                # Unpaced, but this process's slow-start window is full: wait for a
                # request to finish (as the in-memory pacer does before the first 429).
                room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._window_waiters.append(room)
                await room
                continue
            waiter: asyncio.Future[tuple[float, bool] | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._kick()
            answer = await waiter
            if answer is None:
                continue  # Redis went away while we waited: decide again
            start, paced = answer
            wait = start - self._clock()
            if wait > 0:
                await self._sleep(wait)
            if paced:
                return self._admit_shared(start)
            # Unpaced (after any pause): the lease and the window decide.

    def on_success(self, sent_at: float) -> None:
        """An admitted request was accepted."""
        if self._is_local(sent_at):
            self._local.on_success(sent_at)
            return
        if self._last is None or not self._last.interval:
            self._cwnd += self._local.slow_start_growth
        self._release()
        if self._down_since is None or self.options.fail_closed:
            self._pending_ok += 1

    def on_error(self, sent_at: float) -> None:
        """An admitted request ended neither in success nor in a 429."""
        if self._is_local(sent_at):
            self._local.on_error(sent_at)
        else:
            self._release()

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        """A 429: told to Redis at once (the pause and the cut are everyone's)."""
        if self._is_local(sent_at):
            self._local.on_throttle(sent_at, retry_after)
            return
        self._release()
        if self._down_since is not None and not self.options.fail_closed:
            return  # admitted by Redis before it went away: nobody to tell
        hint = retry_after if retry_after is not None and retry_after > 0 else -1.0
        self._pending_429.append((round(sent_at * 1e6), hint))
        self._lease_until = 0.0  # no more free admissions until Redis has heard
        self._kick()

    def _release(self) -> None:
        """One shared admission is over: room in the slow-start window for the next."""
        self._in_flight -= 1
        waiters = self._window_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def aclose(self) -> None:
        """Stop talking to Redis (and close the connection if this pacer opened it)."""
        for task in (self._driver, self._probe):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._driver = self._probe = None
        if self._owns_redis:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    # -- internals ----------------------------------------------------------------------

    def _admit_shared(self, local_start: float) -> float:
        self._in_flight += 1
        self._note_admission(local_start)
        reply = self._last
        if reply is None:
            return local_start
        # As a Redis time: the local start mapped back through the last answer.
        return reply.now + (local_start - self._reply_local_now)

    def _note_admission(self, now: float) -> None:
        recent = self._recent
        recent.append(now)
        while recent[0] < now - 1.0:
            recent.popleft()

    async def _acquire_local(self) -> float:
        local = self._local
        admitted = local.try_acquire()
        if admitted is None:
            admitted = await local.acquire()
        self._admitted_local[admitted] += 1
        return admitted

    def _is_local(self, sent_at: float) -> bool:
        counter = self._admitted_local
        if counter and counter[sent_at] > 0:
            counter[sent_at] -= 1
            if not counter[sent_at]:
                del counter[sent_at]
            return True
        return False

    def _kick(self) -> None:
        self._wake.set()
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _call(self, want: int) -> _Reply:
        """One round trip: hand over the feedback, reserve up to ``want`` start times."""
        if self._script is None:
            # redis-py's Script runs EVALSHA and loads the script on NOSCRIPT (a restarted
            # or flushed server), so the script travels once per server, not per call.
            self._script = self._redis.register_script(_SCRIPT)
        oks, throttles = self._pending_ok, self._pending_429
        local = self._local
        args: list[Any] = [
            want,
            oks,
            self.rate_limit or 0,
            local.beta,
            local.recover,
            local.doubling,
            local.max_pause,
            local.max_exact_pause,
            local.window,
            self.options.ttl,
            self.options.horizon,
            self.options.lease,
            len(throttles),
        ]
        for sent, hint in throttles:
            args += [sent, hint]
        self._pending_ok, self._pending_429 = 0, []
        try:
            raw = await asyncio.wait_for(
                self._script(keys=[self._key], args=args), self.options.budget
            )
        except BaseException:
            # Not delivered: keep the feedback for the next call.
            self._pending_ok += oks
            self._pending_429[:0] = throttles
            raise
        now = self._clock()
        reply = _Reply(raw, now)
        self._last = reply
        self._reply_local_now = now
        return reply

    async def _drive(self) -> None:
        """The one task per process that talks to Redis: batches waiters and feedback."""
        while True:
            self._wake.clear()
            waiters = self._waiters
            while waiters and waiters[0].done():
                waiters.popleft()
            # Successes alone ride along with the next call; they never cause one.
            if not waiters and not self._pending_429:
                return
            if self._down_since is not None and not self.options.fail_closed:
                self._release_all(None)
                return
            try:
                reply = await self._call(len(waiters))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._went_down(exc)
                if self.options.fail_closed:
                    await self._wait(self.options.retry_every)
                    continue
                self._release_all(None)
                return
            self._came_back()
            self._lease_until = reply.lease_until
            if reply.interval == 0:  # unpaced: everyone may go (after any pause)
                self._release_all((max(reply.first, reply.pause_until), False))
                continue
            for i in range(reply.granted):
                while waiters and waiters[0].done():
                    waiters.popleft()
                if not waiters:
                    break
                waiters.popleft().set_result((reply.first + i * reply.interval, True))
            if waiters and not reply.granted:
                # The next slot is beyond the horizon: ask again when it is near
                # (or at once if a 429 arrives meanwhile).
                due = reply.first - self.options.horizon - self._clock()
                await self._wait(max(due, 0.0))

    async def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early when there is news (a 429)."""
        if seconds <= 0:
            return
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _release_all(self, start: tuple[float, bool] | None) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(start)

    def _went_down(self, exc: BaseException) -> None:
        now = self._clock()
        self._next_try = now + self.options.retry_every
        self._lease_until = 0.0
        if self._down_since is not None:
            return
        self._down_since = now
        self.fallbacks += 1
        if self._on_fallback is not None:
            self._on_fallback()
        mode = "waiting for it" if self.options.fail_closed else "pacing locally until it answers"
        # The type only: a Redis error's text may quote the URL or a server reply.
        logger.warning(
            "shared pacing: Redis at %s unreachable (%s); %s",
            self._display,
            type(exc).__name__,
            mode,
        )
        if not self.options.fail_closed:
            self._pending_ok, self._pending_429 = 0, []
            self._seed_local(now)

    def _seed_local(self, now: float) -> None:
        """Start local pacing from this process's recent share of the shared rate."""
        reply = self._last
        if reply is None or reply.limit is None:
            return
        recent = [t for t in self._recent if t >= now - 1.0]
        share = max(len(recent) / 1.0, 1.0)
        self._local_store.save(
            PacingState(limit=share, cut_at=now, searching=False, pause_until=0.0)
        )

    def _came_back(self) -> None:
        if self._down_since is None:
            return
        logger.info("shared pacing: Redis at %s answers again; rejoined", self._display)
        self._down_since = None

    def _maybe_rejoin(self) -> None:
        """While local: now and then, try Redis in the background."""
        if self._probe is not None and not self._probe.done():
            return
        if self._clock() < self._next_try:
            return
        self._next_try = self._clock() + self.options.retry_every

        async def probe() -> None:
            try:
                await self._call(0)
            except asyncio.CancelledError:
                raise
            except Exception:
                return
            self._came_back()

        self._probe = asyncio.get_running_loop().create_task(probe())


def shared_pacer(
    *,
    api_root: str,
    token: str,
    pacing_url: str | None,
    pacing_redis: Redis | None,
    fail_closed: bool | None,
    env: Mapping[str, str],
    rate_limit: float | None,
    on_fallback: Callable[[], None] | None,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[Any]],
) -> RedisPacer | None:
    """The client's shared pacer: ``pacing_redis`` (a client the caller holds), else
    ``pacing_url``, else ``$OT_PACING_URL``; None when none is set ("" turns the env off)."""
    key = pacing_key(api_root, token)
    if pacing_redis is not None:
        options = RedisPacingOptions(fail_closed=bool(fail_closed))
        redis, display, owns = pacing_redis, "<redis client>", False
    else:
        url = pacing_url if pacing_url is not None else env.get(PACING_URL_ENV)
        if not url or not url.strip():
            return None
        client_url, options = parse_pacing_url(url)
        if fail_closed is not None:
            options = attrs.evolve(options, fail_closed=fail_closed)
        redis, display, owns = redis_from_url(client_url, options), redact_url(url), True
    return RedisPacer(
        redis,
        key,
        rate_limit=rate_limit,
        options=options,
        owns_redis=owns,
        url_for_display=display,
        on_fallback=on_fallback,
        clock=clock,
        sleep=sleep,
    )
