"""Where the shared pacing state lives: the pacing URL and its options, the key of one
(API root, token) pair, and the Redis client built from the URL."""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import attrs

import opentrain_async._redis as _redis
from opentrain_async._errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "PACING_URL_ENV",
    "RedisPacingOptions",
    "pacing_key",
    "parse_pacing_url",
    "redact_url",
    "redis_from_url",
]

PACING_URL_ENV = "OT_PACING_URL"
_KEY_PREFIX = "opentrain:pacing:"


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


def redis_from_url(url: str, options: RedisPacingOptions) -> Redis:
    """A ``redis.asyncio.Redis`` for the client URL ``parse_pacing_url`` gave (no I/O);
    ``ConfigurationError`` without the extra or for an option the client refuses."""
    try:
        return _redis.connect_url(
            url,
            what="pacing_url",
            single_try=True,  # a report re-sent after a lost reply would count twice
            socket_timeout=options.budget,
            socket_connect_timeout=options.budget,
        )
    except _redis.MissingRedisExtra as exc:
        raise ConfigurationError(str(exc)) from None
    except _redis.RedisURLError as exc:
        raise ConfigurationError(
            f"pacing_url {redact_url(url)!r} was refused by the Redis client ({exc})"
        ) from None
