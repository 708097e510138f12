"""The bulk journal on Redis: a job that survives its machine.

``--journal redis://[[user]:password@]host[:port][/db]?job=NAME`` (``rediss://`` for TLS)
keeps a job's records in Redis under its name, so a rerun on any machine resumes it, and
holds a lease so that only one runner sends for a job at a time, across machines.

Keys (one hash tag per job, so a cluster keeps them on one slot)::

    opentrain:journal:{NAME}:records   list of JSON records (the file journal's lines)
    opentrain:journal:{NAME}:lease     hash: owner, token, host, pid, machine, since
    opentrain:journal:{NAME}:fence     counter: the lease's fencing token

**Records** are appended with one Lua script per batch (group commit: every record
written while a round trip is under way goes in the next one), and the script appends
only while the lease is ours: a runner that lost its lease can record nothing.  Each
append renews the lease and pushes the records' expiry to ``retention`` after the last
write, so a finished or abandoned job's records go away on their own (default 7 days).

**The lease** is taken with ``INCR`` of the fence (a token that only grows) and a hash
with a TTL (``lease``, default 15 s) naming the holder; a background task renews it every
third of the TTL.  A second run finds it held and refuses, naming the holder.  A holder
that died on this machine (same kernel boot and PID namespace, PID gone) is taken over at
once; elsewhere, its lease expires after at most one TTL.

**Fencing.**  The runner may send only while its lease is confirmed: every POST checks,
when it starts and again as aiohttp hands it to the socket, that the last successful
renewal or append started less than ``TTL - margin`` ago (on ``CLOCK_BOOTTIME``, which
keeps counting while a process is stopped or the machine suspended); before each POST
the lease's remaining PTTL is read from Redis and must exceed the margin (Redis counts
the lease on its own clock: a forward step of it expires the lease early, which no
local clock sees); and every record's append checks the owner in Redis atomically.  A
runner paused past its lease (SIGSTOP, a GC pause, a partition) therefore wakes up
unable to send or record, while the run that took over reads back what it left open.
What fencing cannot stop is a process stopped between the last check and the write
itself (a few bytecodes; at most one request): the server has no fencing token to
compare.

The password is never printed: ``RedisJournalURL`` shows it as ``***`` and every error
raised here is built from that redacted form, with no exception chain from the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs

import opentrain_async._redis as _redis
from opentrain_async._errors import OpenTrainError
from opentrain_async._json import json_loads  # deep nesting: ValueError, no crash
from opentrain_async._redis import scripts

from ._journal import CorruptRecordError, JournalError, StoredRecords

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "JobInfo",
    "JournalBusyError",
    "JournalLostError",
    "JournalUnavailableError",
    "LeaseHolder",
    "RedisJournalStore",
    "RedisJournalURL",
    "encode_record",
    "is_redis_url",
    "parse_duration",
    "read_job",
]

DEFAULT_LEASE = 15.0
"""Seconds a lease lasts unless renewed (renewed every third of it)."""
DEFAULT_RETENTION = 7 * 86400.0
"""Seconds a job's records are kept after its last write (7 days)."""
MAX_BATCH = 1000
"""Records per append script call (Lua's unpack() has a stack limit)."""
READ_CHUNK = 10_000
KEY_PREFIX = "opentrain:journal:"
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}")


class JournalUnavailableError(JournalError, OpenTrainError):
    """The journal's Redis cannot be reached or refused us before the run started."""


class JournalBusyError(JournalError, OpenTrainError):
    """Another live run holds the job's lease."""

    def __init__(self, message: str, holder: LeaseHolder) -> None:
        super().__init__(message)
        self.holder = holder


class JournalLostError(JournalError, OpenTrainError):
    """The run lost its journal mid-run (Redis gone, or the lease taken over): it must
    stop sending, since nothing more it does can be recorded."""


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
GONE = "its records and lease are gone from Redis"


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


def _lease_clock() -> float:
    """Seconds on a clock that keeps counting while the process is stopped and while the
    machine is suspended (Linux ``CLOCK_BOOTTIME``; elsewhere ``time.monotonic``)."""
    return time.clock_gettime(_BOOTTIME)


_BOOTTIME: int = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _machine_id() -> str | None:
    """This kernel boot and PID namespace: PIDs compare only between processes sharing it."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{namespace}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process: alive
        return True
    return True


@attrs.frozen
class LeaseHolder:
    """Who holds a job's lease: for messages, ``journal show`` and the takeover rule."""

    host: str
    pid: int
    since: float
    """Wall-clock time the holder took the lease."""
    token: int
    """Fencing token: every new lease gets a larger one."""
    machine: str | None = None
    expires_in: float | None = None
    """Seconds left on the lease when it was read."""

    @classmethod
    def from_redis(cls, raw: Mapping[Any, Any], ttl_ms: int | None) -> LeaseHolder:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            host=fields.get("host", "?"),
            pid=int(fields.get("pid", "0") or 0),
            since=float(fields.get("since", "0") or 0),
            token=int(fields.get("token", "0") or 0),
            machine=fields.get("machine") or None,
            expires_in=None if ttl_ms is None or ttl_ms < 0 else ttl_ms / 1000,
        )

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since))
        text = f"host {self.host}, pid {self.pid}, since {since} (lease #{self.token}"
        if self.expires_in is not None:
            text += f", expires in {self.expires_in:.0f} s unless renewed"
        return text + ")"

    def dead_here(self, machine: str | None) -> bool:
        """True when the holder ran on this machine and its process is gone."""
        return machine is not None and self.machine == machine and not _pid_alive(self.pid)


async def _lrange(key: str, start: int, stop: int, redis: Redis) -> list[Any]:
    return list(await redis.lrange(key, start, stop))


def _describe_redis_error(exc: BaseException) -> str:
    """A short reason from a redis-py error (its messages hold host/port, no password)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as stored: the file journal's line, without the newline."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )


class RedisJournalStore:
    """A ``JournalStore`` in Redis: a job's records plus the lease of the run using it.

    ``open`` takes the lease (``read_only``: connects only, for ``--dry-run`` and
    ``journal show``), ``read``/``create``/``append`` move records, ``close`` releases.
    One event loop; ``clock`` measures the fencing deadline (it must keep counting while
    the process is stopped or the machine suspended).
    """

    def __init__(
        self,
        url: RedisJournalURL,
        *,
        read_only: bool = False,
        client: Redis | None = None,
        clock: Callable[[], float] = _lease_clock,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.url = url
        self.name = url.redacted()
        self.read_only = read_only
        self._client = client
        self._clock = clock
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self._machine = _machine_id()
        self.owner = os.urandom(16).hex()
        self.token: int | None = None
        self._lease_ms = round(url.lease * 1000)
        self._retention_ms = round(url.retention * 1000)
        self._margin = min(2.0, url.lease / 5)
        self._valid_until = float("-inf")
        self._redis_until = float("inf")
        """The lease's end as Redis last told us (its own clock: a forward step there
        expires the lease early), less the margin; ``lost`` heeds the earlier of the two."""
        self._redis_seen = float("-inf")
        self._reading: asyncio.Future[None] | None = None
        """The PTTL reading under way, shared by the sends checking meanwhile."""
        self._lost: str | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self.records = 0
        """Records this run appended."""
        self.took_over: LeaseHolder | None = None
        """The dead holder this run took the lease from, if any."""
        self._k_lease = url.key("lease")
        self._k_records = url.key("records")
        self._k_fence = url.key("fence")

    def __repr__(self) -> str:
        return f"RedisJournalStore({self.name!r}, token={self.token})"

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            self._client = self.url.connect()
        return self._client

    async def _script_call(self, name: str, keys: list[str], args: list[Any], _: Redis) -> Any:
        """Run ``_script(name)`` (a ``_call_at_start`` call: the client comes last)."""
        return await self._script(name)(keys=keys, args=args)

    def _script(self, name: str) -> AsyncScript:
        """``_redis/lua/NAME.lua`` on this store's client (``scripts.register``)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = scripts.register(self._redis, name)
        return script

    # -- JournalStore ----------------------------------------------------------------

    async def open(self) -> None:
        """Take the job's lease (``JournalBusyError`` naming a live holder;
        ``JournalUnavailableError`` when Redis cannot be reached).  On failure the
        connection is closed: the caller has nothing to clean up."""
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        if self.read_only:
            await self._call_at_start(lambda r: r.ping())
            return
        steal = ""
        holder: LeaseHolder | None = None
        for _ in range(2):
            sent = self._clock()
            args: list[str | int] = [self.owner, self._lease_ms, self.host, self.pid]
            args += [self._machine or "", f"{time.time():.3f}", steal]
            acquire = functools.partial(
                self._script_call, "journal_acquire", [self._k_lease, self._k_fence], args
            )
            reply = await self._call_at_start(acquire)
            if int(reply[0]) == 1:
                self.token = int(reply[1])
                self._valid_until = sent + self.url.lease - self._margin
                self._renewer = asyncio.create_task(self._renew_forever())
                return
            fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
            holder = LeaseHolder.from_redis(fields, int(reply[2]))
            if not steal and holder.dead_here(self._machine):
                steal = _text(fields.get(b"owner", b""))
                self.took_over = attrs.evolve(holder, expires_in=None)
                continue
            break
        assert holder is not None
        raise JournalBusyError(
            f"{self.url.where} is being run by another process: {holder.describe()}; "
            "wait for it to finish (if it died on another machine, its lease expires "
            "within the time shown)",
            holder,
        )

    async def read(self) -> StoredRecords:
        """Every record of the job, oldest first (Redis never holds a torn one)."""
        records: list[dict[str, Any]] = []
        start = 0
        while True:
            stop = start + READ_CHUNK - 1
            chunk = await self._call_at_start(
                functools.partial(_lrange, self._k_records, start, stop)
            )
            for raw in chunk:
                try:
                    record = json_loads(raw)
                except ValueError as exc:
                    raise CorruptRecordError(len(records), str(exc)) from None
                if not isinstance(record, dict):
                    raise CorruptRecordError(len(records), "not an object")
                records.append(record)
            if len(chunk) < READ_CHUNK:
                return StoredRecords(records)
            start += READ_CHUNK

    async def create(self, header: Mapping[str, Any]) -> None:
        """Write the header as the first record, only if the job has no records yet."""
        await self._write([header], first=True)

    async def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append records (one round trip per ``MAX_BATCH``) while the lease is ours."""
        for at in range(0, len(records), MAX_BATCH):
            await self._write(records[at : at + MAX_BATCH], first=False)

    async def close(self) -> None:
        """Release the lease (records then expire after the retention) and disconnect.
        Never raises: at worst the lease just expires."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(BaseException):
                await self._renewer
            self._renewer = None
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            with contextlib.suppress(BaseException):
                await self._reading
        if self.token is not None and self._lost is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._script("journal_release")(
                        keys=[self._k_lease, self._k_records, self._k_fence],
                        args=[self.owner, self._retention_ms],
                    ),
                    timeout=max(2.0, self.url.lease / 3),
                )
            self._lost = "the run ended"
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    # -- writing under the lease -----------------------------------------------------

    async def _write(self, records: Sequence[Mapping[str, Any]], *, first: bool) -> None:
        if self._lost is not None:
            raise JournalLostError(self._lost_message(self._lost))
        encoded = [encode_record(self._stamp(r)) for r in records]
        sent = self._clock()
        length: Any = None
        try:
            length = await self._script("journal_append")(
                keys=[self._k_lease, self._k_records],
                args=[self.owner, self._lease_ms, self._retention_ms, 1 if first else 0, *encoded],
            )
        except Exception as exc:
            self._lose(f"Redis failed: {_describe_redis_error(exc)}")
        if length is None:  # raised outside the handler: nothing of the client's attached
            raise JournalLostError(self._lost_message(self._lost or ""))
        if int(length) == -4:
            self._lose(GONE)
            raise JournalLostError(self._lost_message(self._lost or ""))
        if int(length) == -1:
            self._lose("its lease was taken over by another run")
            raise JournalLostError(self._lost_message(self._lost or ""))
        if int(length) == -2:
            raise JournalError(f"journal {self.name} was created by another run at the same time")
        self._confirmed(sent)
        self.records += len(encoded)

    def _stamp(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        """Run records name the host and lease that wrote them (for ``journal show``)."""
        if record.get("event") != "run":
            return record
        return {**record, "host": self.host, "lease": self.token}

    async def _call_at_start(self, call: Callable[[Redis], Awaitable[Any]]) -> Any:
        """Run one Redis call; any failure is ``JournalUnavailableError`` (no password,
        no exception chain)."""
        try:
            return await call(self._redis)
        except JournalError:
            raise
        except Exception as exc:
            reason = _describe_redis_error(exc)
        # Raised outside the handler: no __context__ pointing at the client's exception
        # (and cleared after: Python 3.10 may attach one handled further up the stack).
        error = JournalUnavailableError(f"cannot use the journal at {self.name}: {reason}")
        try:
            raise error
        finally:
            error.__context__ = None

    # -- the lease -------------------------------------------------------------------

    async def _renew_forever(self) -> None:
        interval = self.url.lease / 3
        while self._lost is None:
            await asyncio.sleep(interval)
            sent = self._clock()
            try:
                held = await self._script("journal_renew")(
                    keys=[self._k_lease, self._k_records], args=[self.owner, self._lease_ms]
                )
            except Exception as exc:
                # Keep trying: the deadline stops sends if Redis stays away.
                if self._clock() > self._valid_until:
                    self._lose(f"Redis unreachable ({_describe_redis_error(exc)})")
                continue
            if int(held) != 1:
                gone = int(held) == -4
                self._lose(GONE if gone else "its lease was taken over by another run")
                return
            self._confirmed(sent)

    def _confirmed(self, sent: float) -> None:
        if self._lost is None:
            self._valid_until = max(self._valid_until, sent + self.url.lease - self._margin)
            self._observed(sent, self.url.lease)

    def _observed(self, sent: float, remaining: float) -> None:
        """Redis said, in a call started at ``sent``, that the lease has ``remaining``
        seconds left: the latest such word is the one that counts."""
        if sent >= self._redis_seen:
            self._redis_seen = sent
            self._redis_until = sent + remaining - self._margin

    async def confirm_send(self) -> None:
        """Before each POST: ask Redis how long the lease has left, as Redis counts it.

        The local deadline (``CLOCK_BOOTTIME``) cannot see Redis's clock: a forward step
        of the Redis host's clock expires the lease early, another run takes the job
        over and reads back this run's open sends, and a send this run started after
        that is a duplicate.  So every send needs the lease's remaining PTTL in Redis,
        read after its last check, to exceed the margin; the local checks then use the
        earlier of the two deadlines.  Redis unreachable for this one call: the local
        deadline alone decides (the renewer stops sends when Redis stays away).

        Sends that check while a reading is under way share it (one round trip for
        all of them, started at most one round trip before theirs)."""
        self.check_send()
        reading = self._reading
        if reading is None or reading.done():
            reading = self._reading = asyncio.ensure_future(self._read_remaining())
        await asyncio.shield(reading)
        self.check_send()

    async def _read_remaining(self) -> None:
        sent = self._clock()
        try:
            remaining = int(
                await self._script("journal_remaining")(keys=[self._k_lease], args=[self.owner])
            )
        except Exception:
            return
        if remaining == -3 or remaining == -2:
            self._lose("its lease expired in Redis (or was taken over by another run)")
        elif remaining >= 0:
            self._observed(sent, remaining / 1000)

    def _lose(self, why: str) -> None:
        if self._lost is None:
            self._lost = why

    @property
    def gone(self) -> bool:
        """Redis no longer holds this job at all (restarted empty, flushed)."""
        return self._lost == GONE

    @property
    def lost(self) -> str | None:
        """Why this run may no longer send or record (None while the lease holds)."""
        if self._lost is None:
            now = self._clock()
            if now > self._valid_until:
                self._lose("its lease could not be renewed in time")
            elif now > self._redis_until:
                self._lose("its lease is about to expire as Redis counts time")
        return self._lost

    def check_send(self) -> None:
        """Raise ``JournalLostError`` unless this run may start a send now."""
        why = self.lost
        if why is not None:
            raise JournalLostError(self._lost_message(why))

    def _lost_message(self, why: str) -> str:
        if why == GONE:
            return (
                f"stopped sending: the journal for {self.url.where} is gone from Redis (it "
                "restarted empty, was flushed, or the records expired); no further send was "
                "started. What this run delivered is no longer recorded anywhere: a rerun "
                "starts a new journal and sends every input again, delivered ones included, "
                "unless you remove those from the job first (the summary's failures and "
                "--failures list what was not delivered)"
            )
        return (
            f"stopped sending: the journal for {self.url.where} can no longer be written "
            f"({why}); no further send was started. Rerun the same command to resume once "
            "Redis is reachable (sends left open are checked by read-back, never resent "
            "blindly)"
        )

    def trace_config(self) -> aiohttp.TraceConfig:
        """aiohttp hooks that stop every POST before it goes on the wire once the lease is
        lost: when the request starts (sends already pulled, waiting for the pacer or a
        slot), and again when its body is handed to the socket.

        The second check is the one that counts: aiohttp awaits ``on_request_chunk_sent``
        right before it writes the buffered headers and the body to the transport in one
        call, with nothing awaited in between.  A runner stopped anywhere earlier (getting
        a connection, the body-writing task waiting for its turn on the loop) wakes up to
        a failed check instead of sending.  What remains is a process stopped in the
        few bytecodes between this check and the ``write``: at most one request, since no
        other task runs in that stretch (the woken process cannot tell that it happened:
        the time it could compare is taken before the write or after it, never at it).
        The refused request raises ``JournalLostError`` from inside aiohttp (as the cause
        of a connection error, which the pipeline unwraps); nothing of it was written."""
        config = aiohttp.TraceConfig()

        async def on_request_start(
            session: aiohttp.ClientSession,
            context: Any,
            params: aiohttp.TraceRequestStartParams,
        ) -> None:
            if params.method == "POST":
                await self.confirm_send()

        async def on_request_chunk_sent(
            session: aiohttp.ClientSession,
            context: Any,
            params: aiohttp.TraceRequestChunkSentParams,
        ) -> None:
            if params.method == "POST":
                self.check_send()

        config.on_request_start.append(on_request_start)
        config.on_request_chunk_sent.append(on_request_chunk_sent)
        return config


@attrs.frozen
class JobInfo:
    """What ``journal show`` reports about a job on Redis besides its records."""

    holder: LeaseHolder | None
    records_ttl: float | None
    """Seconds until the records expire (None: no expiry set, or no records)."""


async def read_job(url: RedisJournalURL) -> tuple[list[dict[str, Any]], JobInfo]:
    """A job's records and lease, read without taking the lease (``journal show``)."""
    store = RedisJournalStore(url, read_only=True)
    try:
        await store.open()
        stored = await store.read()
        raw, lease_ttl, records_ttl = await store._call_at_start(
            lambda r: asyncio.gather(
                r.hgetall(url.key("lease")), r.pttl(url.key("lease")), r.pttl(url.key("records"))
            )
        )
    except CorruptRecordError as exc:
        raise JournalError(f"journal {store.name} is corrupt: {exc}") from None
    finally:
        await store.close()
    holder = LeaseHolder.from_redis(dict(raw), int(lease_ttl)) if raw else None
    ttl = None if int(records_ttl) < 0 else int(records_ttl) / 1000
    return stored.records, JobInfo(holder, ttl)
