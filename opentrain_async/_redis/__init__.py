"""The Redis layer shared by shared pacing, the Redis journal and webhook dedupe: one URL
parser, one redaction of URL-shaped secrets (also used for the API base URL), one connect,
one missing-extra error, and the Lua scripts (``lua/*.lua``, package data) with their one
loader (``scripts.register``).  Nothing here imports the rest of the package."""

from __future__ import annotations

from .connect import (
    MissingRedisExtra,
    connect,
    connect_url,
    missing_extra_message,
    require_redis,
)
from .url import (
    SECRET_NAME,
    RedisURL,
    RedisURLError,
    has_userinfo,
    parse_redis_url,
    redact_url,
    shown_userinfo,
    split_userinfo,
)

__all__ = [
    "SECRET_NAME",
    "MissingRedisExtra",
    "RedisURL",
    "RedisURLError",
    "connect",
    "connect_url",
    "has_userinfo",
    "missing_extra_message",
    "parse_redis_url",
    "redact_url",
    "require_redis",
    "shown_userinfo",
    "split_userinfo",
]
