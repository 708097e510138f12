"""Where a Redis journal lives: ``redis://[[user]:password@]host[:port][/db]?job=NAME``
(``rediss://`` for TLS), with the job's ``lease`` and ``retention`` durations, parsed
once (``RedisJournalURL``: it never shows the password) and the keys named after it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

import opentrain_async._redis as _redis

from ._journal import JournalError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "KEY_PREFIX",
    "MAX_LEASE",
    "MAX_RETENTION",
    "MIN_RETENTION",
    "RedisJournalURL",
    "is_redis_url",
    "parse_duration",
]

DEFAULT_LEASE = 15.0
"""Seconds a lease lasts unless renewed (renewed every third of it)."""
DEFAULT_RETENTION = 7 * 86400.0
"""Seconds a job's records are kept after its last write (7 days)."""
KEY_PREFIX = "opentrain:journal:"
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}")


def is_redis_url(text: str) -> bool:
    """True for ``redis://`` and ``rediss://`` journal locations, and for mistyped ones
    (``redis:/``, ``redis:host``, ``redis//:pw@h``): parsed as URLs, they are refused
    with the password hidden, not taken as a file path and printed whole."""
    return bool(_REDIS_LIKE.match(text)) or (bool(_REDIS_DIR_LIKE.match(text)) and "@" in text)


_REDIS_LIKE = re.compile(r"(?i)rediss?:")
_REDIS_DIR_LIKE = re.compile(r"(?i)rediss?/")


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MIN_RETENTION = 3600.0
"""The shortest ``retention``: records must outlive the run (they expire ``retention``
after the last write) and the rerun that resumes it."""
MAX_RETENTION = 366 * 86400.0
"""The longest ``retention`` (a year): beyond, a typo (``1e20d``), not a plan."""
MAX_LEASE = 3600.0


def parse_duration(text: str, field: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d`` -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise JournalError(
            f"journal URL: {field}={text!r} is not a duration (a number of seconds, or "
            "with a unit: 90s, 15m, 12h, 7d)"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise JournalError(f"journal URL: {field} must be greater than 0")
    return seconds


@attrs.frozen
class RedisJournalURL:
    """A parsed ``redis://`` / ``rediss://`` journal location (never shows the password)."""

    host: str
    port: int
    db: int
    job: str
    tls: bool = False
    username: str | None = attrs.field(default=None, repr=False)  # may be half a password
    password: str | None = attrs.field(default=None, repr=False)
    lease: float = DEFAULT_LEASE
    retention: float = DEFAULT_RETENTION

    @classmethod
    def parse(cls, url: str) -> RedisJournalURL:
        """Parse and check a journal URL; errors name the part at fault (no password)."""
        try:
            parts = _redis.parse_redis_url(url)
        except _redis.RedisURLError as exc:
            raise JournalError(f"journal URL {_redact(url)}: {exc}") from None
        port = parts.port or 6379
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise JournalError(
                f"journal URL {_redact(url)}: the path is the database number (0-15 usually), "
                f"got {path!r}"
            )
        query = dict(parts.query)
        unknown = sorted(set(query) - {"job", "lease", "retention"})
        if unknown:
            raise JournalError(
                f"journal URL {_redact(url)}: unknown parameter {unknown[0]!r} "
                "(known: job, lease, retention)"
            )
        job = query.get("job", "")
        if not _JOB_NAME.fullmatch(job):
            raise JournalError(
                f"journal URL {_redact(url)}: job must be 1-200 characters of letters, digits "
                f"and ._:@- (starting with a letter or digit), got {job!r}; e.g. ?job=invoices"
            )
        lease = parse_duration(query["lease"], "lease") if "lease" in query else DEFAULT_LEASE
        if lease < 1:
            raise JournalError("journal URL: lease must be at least 1 second")
        if lease > MAX_LEASE:
            raise JournalError("journal URL: lease must be at most 1h (3600 s)")
        retention = (
            parse_duration(query["retention"], "retention")
            if "retention" in query
            else DEFAULT_RETENTION
        )
        if not MIN_RETENTION <= retention <= MAX_RETENTION:
            raise JournalError(
                f"journal URL: retention must be between 1h and 366d (got {retention:g} s): "
                "the records must outlive the run and the rerun that resumes it"
            )
        return cls(
            host=parts.host,
            port=port,
            db=int(path or 0),
            job=job,
            tls=parts.scheme == "rediss",
            username=parts.username,
            password=parts.password,
            lease=lease,
            retention=retention,
        )

    def __str__(self) -> str:
        return self.redacted()

    def redacted(self) -> str:
        """The URL as shown to people: the password replaced by ``***``."""
        scheme = "rediss" if self.tls else "redis"
        auth = _redis.shown_userinfo(self.username, self.password is not None)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}?job={self.job}"

    @property
    def where(self) -> str:
        """Short form for messages: ``job NAME on host:port/db``."""
        return f"job {self.job!r} on {self.host}:{self.port}/{self.db}"

    def key(self, name: str) -> str:
        return f"{KEY_PREFIX}{{{self.job}}}:{name}"

    def connect(self, env: Mapping[str, str] | None = None) -> Redis:
        """A redis-py asyncio client (the ``redis`` extra) for this location.  Without a
        password in the URL, ``$REDISCLI_AUTH`` (what redis-cli reads) supplies it, so it
        need not appear on a command line."""
        try:
            return _redis.connect(
                _redis.RedisURL(
                    "rediss" if self.tls else "redis",
                    self.host,
                    self.port,
                    "",
                    username=self.username,
                    password=self.password,
                ),
                what="a redis:// journal",
                password=(os.environ if env is None else env).get("REDISCLI_AUTH") or None,
                single_try=True,
                db=self.db,
                socket_timeout=max(2.0, self.lease / 3),
                socket_connect_timeout=max(2.0, self.lease / 3),
                health_check_interval=0,
            )
        except _redis.MissingRedisExtra as exc:
            raise JournalError(str(exc)) from None


def _redact(url: str) -> str:
    """The raw URL with its password as ``***`` (``_redis.redact_url``: before parsing)."""
    return _redis.redact_url(url)
