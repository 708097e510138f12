"""Connecting to Redis: the one check for the ``redis`` extra, and one way to build
a client from a parsed ``RedisURL`` (so the password never goes through a URL parser
that could cut it at a ``/``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .url import RedisURL

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MissingRedisExtra", "connect", "missing_extra_message", "require_redis"]

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


def connect(
    url: RedisURL,
    *,
    what: str,
    password: str | None = None,
    single_try: bool = False,
    **options: Any,
) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (nothing connects until the first call).

    ``password`` is used when the URL has none; ``single_try`` turns off redis-py's
    own retries (the caller decides what a failure means).  Other keywords go to the
    client.  Raises ``MissingRedisExtra`` without the extra.
    """
    require_redis(what)
    from redis.asyncio import Redis

    if single_try:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options["retry"] = Retry(NoBackoff(), 1)
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
