"""Connecting to Redis: the one check for the ``redis`` extra, and the two ways a client
is built: from a parsed ``RedisURL`` (``connect``: the password never goes through a URL
parser that could cut it at a ``/``), or from a URL whose query carries the client's own
options (``connect_url``, for the pacing URL; its userinfo already percent-encoded by
``RedisURL.client_url``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .url import RedisURL, RedisURLError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "MissingRedisExtra",
    "blocking_client",
    "connect",
    "connect_url",
    "missing_extra_message",
    "no_retry",
    "require_redis",
]

EXTRA_HINT = 'pip install "opentrain-async[redis]"'


class MissingRedisExtra(ImportError):
    """The ``redis`` package is not installed (callers re-raise their own error)."""


def missing_extra_message(what: str) -> str:
    """``"WHAT needs the redis extra: pip install ..."``: the one wording."""
    return f"{what} needs the redis extra: {EXTRA_HINT}"


def require_redis(what: str) -> None:
    """Raise ``MissingRedisExtra`` (no chain) unless ``redis.asyncio`` imports."""
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise MissingRedisExtra(missing_extra_message(what)) from None


def blocking_client(redis: object, what: str) -> str | None:
    """Why ``redis`` cannot serve ``what``, if it is the blocking ``redis.Redis`` (``from
    redis import Redis``) or ``redis.cluster.RedisCluster``: it runs each command at once
    and returns the result, so the ``await`` after it raised TypeError, the command done
    (a webhook claim taken)."""
    try:
        from redis import Redis as BlockingRedis
        from redis.cluster import RedisCluster as BlockingCluster
    except ImportError:
        return None
    if isinstance(redis, BlockingCluster):  # the same slip on a cluster (not a Redis)
        return (
            f"{what} needs a redis.asyncio.RedisCluster (from redis.asyncio.cluster import "
            "RedisCluster), not redis.cluster.RedisCluster"
        )
    if not isinstance(redis, BlockingRedis):
        return None
    return f"{what} needs a redis.asyncio.Redis (from redis.asyncio import Redis), not redis.Redis"


def no_retry() -> Any:
    """A redis-py ``Retry`` that never re-sends: each command is tried once.

    redis-py re-sends a command whose reply timed out or whose connection dropped, and
    Redis may already have run it: a script that adds (a pacing report) or appends (a
    journal record) would count twice.  The caller decides what a failure means.  (In
    redis-py, ``Retry(backoff, 1)`` is one retry, two tries: hence 0.)"""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), 0)


def connect(
    url: RedisURL,
    *,
    what: str,
    password: str | None = None,
    single_try: bool = False,
    **options: Any,
) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (nothing connects until the first call).

    ``password`` is used when the URL has none; ``single_try``: see ``no_retry``.
    Other keywords go to the client.  Raises ``MissingRedisExtra`` without the extra.
    """
    require_redis(what)
    from redis.asyncio import Redis

    if single_try:
        options["retry"] = no_retry()
    if url.scheme == "unix":
        options["unix_socket_path"] = url.path
    else:
        options.setdefault("host", url.host or "localhost")
        options.setdefault("port", url.port or 6379)
        options.setdefault("ssl", url.scheme == "rediss")
    return Redis(
        username=url.username,
        password=url.password if url.password is not None else password,
        **options,
    )


def connect_url(url: str, *, what: str, single_try: bool = False, **options: Any) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url``, whose query may hold the client's options
    (``?health_check_interval=10``); nothing connects until the first call.  With
    ``single_try``, no command is re-sent (``no_retry``), whatever the query says.

    A value or query option the client refuses fails here, not on every later call (a
    connection is built, unconnected), as ``RedisURLError`` naming the kind of problem
    only: the client's own message may quote the URL.  Raises ``MissingRedisExtra``
    without the extra.
    """
    require_redis(what)
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    if single_try:
        options["retry"] = no_retry()
    try:
        redis = Redis.from_url(url, **options)
        pool = redis.connection_pool
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, RedisError) as exc:
        raise RedisURLError(
            f"{type(exc).__name__}: a value, or a query option it does not take"
        ) from None
    return redis
