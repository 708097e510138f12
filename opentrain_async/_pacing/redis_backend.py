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

Scripts are loaded once per server and called by SHA (redis-py's ``Script``: EVALSHA,
and SCRIPT LOAD again on NOSCRIPT after a restart or flush).

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

_LUA_COMMON = """
local NB = tonumber(ARGV[1])
local S = tonumber(ARGV[2])
local function list(v)
  local t = {}
  if v then for x in string.gmatch(v, '[^,]+') do t[#t + 1] = tonumber(x) end end
  while #t < NB do t[#t + 1] = 0 end
  return t
end
local function fmt(x) return string.format('%.17g', x) end
"""

# reserve: ARGV = NB, S, count, successes, cap ('' none), beta, recover, doubling,
# tolerance, horizon, ttl_ms, idle_after.  Returns strings {now, first, interval, n,
# rate ('' none), cuts, pause_until}.  Mirrors backend.apply_reserve.
_RESERVE = (
    _LUA_COMMON
    + """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local count = math.max(1, tonumber(ARGV[3]))
local successes = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local beta, recover0, doubling = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local tolerance, horizon = tonumber(ARGV[9]), tonumber(ARGV[10])
local idle_after = tonumber(ARGV[12])
local f = redis.call('HMGET', key, 'limit', 'searching', 'origin', 'recover', 'tat',
  'pause_until', 'sample_at', 'accepted', 'offered', 'successes', 'streak', 'cuts')
local limit = tonumber(f[1])
local searching = f[2] ~= '0'
local origin = tonumber(f[3]) or 0
local recover = tonumber(f[4]) or 0
local tat = tonumber(f[5]) or -math.huge
local pause_until = tonumber(f[6]) or 0
local sample_at = tonumber(f[7]) or 0
local accepted, offered = list(f[8]), list(f[9])
local total = tonumber(f[10]) or 0
local streak = tonumber(f[11]) or 0
local cuts = tonumber(f[12]) or 0

local function record(at, acc, off)
  local bucket = math.floor(at / S) * S
  local shift = math.floor((bucket - sample_at) / S + 0.5)
  if shift >= NB then
    accepted, offered = list(nil), list(nil)
    sample_at = bucket
  elseif shift > 0 then
    for i = 1, NB do
      accepted[i] = accepted[i + shift] or 0
      offered[i] = offered[i + shift] or 0
    end
    sample_at = bucket
  end
  accepted[NB] = accepted[NB] + acc
  offered[NB] = offered[NB] + off
end

if successes > 0 then
  record(now, successes, 0)
  total = total + successes
  streak = 0
end

-- schedule.restart_if_idle: a late schedule catches up by tolerance at most; an idle
-- one restarts at now, its curve frozen meanwhile (curve.freeze)
local function freeze(b, e)
  local stalled = e - math.max(b, origin)
  if stalled > 0 and limit ~= nil then origin = origin + stalled end
end
local lag = now - tat
if lag > tolerance then
  if lag < idle_after then
    freeze(tat, now - tolerance)
    tat = now - tolerance
  else
    freeze(math.max(tat, pause_until), now)
    tat = now
  end
end

-- curve.rate
local rate = nil
if limit ~= nil then
  local dt = math.max(now - origin, 0)
  if searching then
    rate = limit * 2 ^ math.min(dt / doubling, 30)
  else
    local r = recover
    if r == 0 then r = recover0 end
    dt = math.min(dt, 60)
    if dt <= 2 * r then
      rate = limit * (1 + (1 - beta) / r ^ 3 * (dt - r) ^ 3)
    else
      rate = limit * (2 - beta) * 2 ^ math.min((dt - 2 * r) / doubling, 30)
    end
  end
end
if cap ~= nil and (rate == nil or cap < rate) then rate = cap end

local first, n, interval = math.max(now, pause_until), count, 0
if rate ~= nil then
  interval = 1 / rate
  -- strict (a stated limit decides): late slots catch up one interval at most
  local tol = tolerance
  if cap ~= nil and rate == cap then tol = math.min(tolerance, interval) end
  local start = math.max(tat, pause_until, now - tol)
  first = start
  n = 0
  -- schedule.reserve_slots: nothing held beyond the horizon (ask again by then)
  if start <= now + horizon then
    n = math.min(count, 1 + math.floor((now + horizon - start) / interval))
    record(now, 0, n)
    tat = start + n * interval
  end
end

redis.call('HSET', key, 'successes', total, 'streak', streak, 'sample_at', fmt(sample_at),
  'accepted', table.concat(accepted, ','), 'offered', table.concat(offered, ','),
  'tat', fmt(tat), 'origin', fmt(origin))
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[11]))
local ratetext = ''
if rate ~= nil then ratetext = fmt(rate) end
return {fmt(now), fmt(first), fmt(interval), n, ratetext, cuts, fmt(pause_until)}
"""
)

# report: ARGV = NB, S, beta, recover, doubling, max_pause, max_hint_pause, ttl_ms,
# WINDOW_HINT, MIN_RATE, WINDOW_SLOTS, recover_round_trips, SEARCH_FLOOR, then per
# feedback (in order): successes, throttled ('1'/'0'),
# throttled_at, retry_after, local_rate, cap ('' for none).  Returns {now, the new
# state as HGETALL}.  Mirrors backend.apply_report (pause.learn_window and on_hint,
# curve.first_cut, cut, freeze, samples.accepted_rate) for each feedback, after the
# shared first estimate (see ``_report``).
_REPORT = (
    _LUA_COMMON
    + """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local beta, recover0, doubling = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local max_pause, max_hint_pause = tonumber(ARGV[6]), tonumber(ARGV[7])
local WINDOW_HINT, MIN_RATE = tonumber(ARGV[9]), tonumber(ARGV[10])
local WINDOW_SLOTS, round_trips = tonumber(ARGV[11]), tonumber(ARGV[12])
local SEARCH_FLOOR = tonumber(ARGV[13])
local cap = nil
local NEG = -math.huge
local f = redis.call('HMGET', key, 'limit', 'searching', 'origin', 'recover', 'cut_at',
  'cuts', 'successes', 'successes_at_cut', 'throttles', 'pause_until', 'pause_began',
  'streak', 'window_hint', 'tat', 'sample_at', 'accepted', 'offered')
local s = {limit = tonumber(f[1]), searching = f[2] ~= '0', origin = tonumber(f[3]) or 0,
  recover = tonumber(f[4]) or 0, cut_at = tonumber(f[5]) or NEG, cuts = tonumber(f[6]) or 0,
  successes = tonumber(f[7]) or 0, successes_at_cut = tonumber(f[8]) or 0,
  throttles = tonumber(f[9]) or 0, pause_until = tonumber(f[10]) or 0,
  pause_began = tonumber(f[11]) or NEG, streak = tonumber(f[12]) or 0,
  window_hint = tonumber(f[13]) or 0, tat = tonumber(f[14]) or NEG,
  sample_at = tonumber(f[15]) or 0}
local accepted, offered = list(f[16]), list(f[17])

-- the buckets shifted so the newest holds `at` (copies; samples._advance)
local function advanced(at)
  local bucket = math.floor(at / S) * S
  local shift = math.floor((bucket - s.sample_at) / S + 0.5)
  local acc, off, at_ = {}, {}, s.sample_at
  for i = 1, NB do
    if shift <= 0 then acc[i], off[i] = accepted[i], offered[i]
    else acc[i], off[i] = accepted[i + shift] or 0, offered[i + shift] or 0 end
  end
  if shift > 0 then at_ = bucket end
  return acc, off, at_
end
local function record(at, acc, off)  -- samples.record
  accepted, offered, s.sample_at = advanced(at)
  accepted[NB] = accepted[NB] + acc
  offered[NB] = offered[NB] + off
end
local function accepted_rate(at, span)  -- samples.accepted_rate
  local acc, off, sample_at = advanced(at)
  local buckets = math.max(1, math.min(NB, math.ceil(span / S - 1e-9)))
  if s.origin < at then
    local since = math.ceil(math.floor((sample_at - s.origin) / S * 1e9 + 0.5) / 1e9) + 1
    buckets = math.max(1, math.min(buckets, since))
  end
  local start = math.max(sample_at - (buckets - 1) * S, math.min(s.origin, at))
  local elapsed = math.max(at - start, S / 2)
  local a, o = 0, 0
  for i = NB - buckets + 1, NB do a, o = a + acc[i], o + off[i] end
  return a / elapsed, o / elapsed
end
local function recover_time()
  if s.recover == 0 then return recover0 end
  return s.recover
end
local function rate_at(at)  -- backend.current_rate (curve.rate, capped)
  local r = nil
  if s.limit ~= nil then
    local dt = math.max(at - s.origin, 0)
    local rec = recover_time()
    if s.searching then
      r = s.limit * 2 ^ math.min(dt / doubling, 30)
    else
      dt = math.min(dt, 60)
      if dt <= 2 * rec then
        r = s.limit * (1 + (1 - beta) / rec ^ 3 * (dt - rec) ^ 3)
      else
        r = s.limit * (2 - beta) * 2 ^ math.min((dt - 2 * rec) / doubling, 30)
      end
    end
  end
  if cap ~= nil and (r == nil or cap < r) then r = cap end
  return r
end
local function is_doubling(at)  -- curve.doubling
  return s.searching or at - s.origin > 2 * recover_time()
end

for g = 14, #ARGV, 6 do
local successes, throttled = tonumber(ARGV[g]), ARGV[g + 1] == '1'
local sent_at, ra, local_rate = tonumber(ARGV[g + 2]), tonumber(ARGV[g + 3]), tonumber(ARGV[g + 4])
cap = tonumber(ARGV[g + 5])

-- the shared first estimate: what every process got through, at least one request
-- per doubling (see RedisPacingBackend._report)
local estimate = math.max(local_rate or 0, 1 / doubling)
local total, first = 0, nil
for i = 1, NB do
  if accepted[i] > 0 and first == nil then first = s.sample_at - (NB - i) * S end
  total = total + accepted[i]
end
if first ~= nil then estimate = math.max(estimate, total / math.max(now - first, S)) end

if successes > 0 then
  record(now, successes, 0)
  s.successes = s.successes + successes
  s.streak = 0
end
if throttled then
  s.throttles = s.throttles + 1
  local tat = s.tat
  local paused_before = math.max(s.pause_until, now)
  -- the rate that drew the 429: the one its request was admitted at
  local admitted = now
  if sent_at ~= nil then admitted = math.min(sent_at, now) end
  local drew_at = rate_at(admitted)
  if ra ~= nil and ra > 0 then
    local exact = ra ~= math.floor(ra)
    local pace = drew_at or estimate  -- pause.learn_window (the first estimate)
    if exact and (pace == nil or ra * pace < WINDOW_SLOTS) then s.window_hint = 0
    elseif (exact or ra >= WINDOW_HINT) and ra > s.window_hint then s.window_hint = ra end
  end
  do  -- pause.on_hint: no hint (or 0) is as unsure as a rounded one: the short pause
    local ra = ra
    if ra == nil or ra <= 0 then ra = 1 end
    local exact = ra ~= math.floor(ra)
    if sent_at ~= nil and sent_at >= s.pause_began then s.streak = s.streak + 1 end
    local wait  -- pause.on_hint
    if exact or ra >= WINDOW_HINT then wait = math.min(ra, max_hint_pause)
    else wait = math.min(max_pause * 2 ^ math.max(s.streak - 1, 0), 1.0) end
    if now + wait > s.pause_until then s.pause_until, s.pause_began = now + wait, now end
  end
  local resume = math.max(s.pause_until, now)
  if s.limit == nil then  -- curve.first_cut
    s.limit = math.max(estimate, MIN_RATE)
    s.searching, s.origin, s.cut_at = true, resume, resume
    s.cuts, s.successes_at_cut = s.cuts + 1, s.successes
  elseif sent_at ~= nil and sent_at > s.cut_at and s.successes > s.successes_at_cut
      and not (s.searching and now - s.origin < doubling and s.window_hint == 0) then
    local drew = drew_at or s.limit
    local span = math.min(math.max(0.25, ra or 0), 1.0)
    local steep = is_doubling(now)
    if steep then span = 0.15 end
    local acc, off = accepted_rate(now, span)
    local paced = rate_at(now - span / 2) or drew
    local measured = nil
    if off >= 0.5 * paced then measured = acc end  -- curve.trust_accepted
    local since = resume - s.cut_at
    if s.window_hint ~= 0 and since > 0 then
      local average = (s.successes - s.successes_at_cut) / since
      measured = nil
      if drew > 2 * average then measured = average end
    end
    local limit = drew  -- curve.cut
    if measured ~= nil then limit = math.min(drew, measured) end
    local window = s.window_hint > 0
    if not window then limit = math.max(limit, 0.5 * drew) end
    if steep and not window then limit = math.max(limit, drew * SEARCH_FLOOR) end
    s.recover = math.max(recover0, 3.0 * s.window_hint, 1.5 * (ra or 0),
      round_trips * (now - admitted))
    s.limit, s.searching, s.origin = math.max(limit, MIN_RATE), false, resume
    s.cut_at, s.cuts, s.successes_at_cut = math.max(resume, tat), s.cuts + 1, s.successes
  else  -- curve.freeze
    local stalled = resume - math.max(paused_before, s.origin)
    if stalled > 0 then s.origin = s.origin + stalled end
  end
end
end

local limit, searching = '', '0'
if s.limit ~= nil then limit = fmt(s.limit) end
if s.searching then searching = '1' end
redis.call('HSET', key, 'limit', limit, 'searching', searching, 'origin', fmt(s.origin),
  'recover', fmt(s.recover), 'cut_at', fmt(s.cut_at), 'cuts', s.cuts,
  'successes', s.successes, 'successes_at_cut', s.successes_at_cut,
  'throttles', s.throttles, 'pause_until', fmt(s.pause_until),
  'pause_began', fmt(s.pause_began), 'streak', s.streak,
  'window_hint', fmt(s.window_hint), 'sample_at', fmt(s.sample_at),
  'accepted', table.concat(accepted, ','), 'offered', table.concat(offered, ','))
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[8]))
return {fmt(now), redis.call('HGETALL', key)}
"""
)

# load: TIME and the state.
_LOAD = """
local t = redis.call('TIME')
return {t[1], t[2], redis.call('HGETALL', KEYS[1])}
"""

# store: ARGV = expected version, ttl_ms, field, value, ...  Writes only if the version
# is unchanged since the load (hand_back: only into an empty key); returns 1, else 0.
_STORE = """
local key = KEYS[1]
if (redis.call('HGET', key, 'v') or '0') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', key, 'v', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[2]))
return 1
"""

# probe: a write Redis refuses when full (OOM) or a read-only replica, as it would
# refuse the scripts above; a probe that only read would rejoin into the next refusal.
_PROBE = """
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]))
return 1
"""

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
        self._reserve_script = redis.register_script(_RESERVE)
        self._report_script = redis.register_script(_REPORT)
        self._load_script = redis.register_script(_LOAD)
        self._store_script = redis.register_script(_STORE)
        self._probe_script = redis.register_script(_PROBE)
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
        """One script, one round trip: ``apply_report`` in Redis for each feedback.

        The first 429 starts the search from what got through so far: with many
        processes, what got through for *all* of them (the successes reported in the
        shared samples, per second since the first), not only for the process that
        happened to see it first (perhaps with no success yet); and at least one
        request per doubling, or every process's first slot at a crawl would hold
        all of them back for longer than a doubling while the search climbed untested."""
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
