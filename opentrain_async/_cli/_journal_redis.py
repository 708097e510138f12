"""The bulk journal on Redis: a job that survives its machine.

``--journal redis://[[user]:password@]host[:port][/db]?job=NAME`` (``rediss://`` for TLS,
parsed in ``_journal_redis_url``) keeps a job's records in Redis under its name, so a
rerun on any machine resumes it, and holds a lease so that only one runner sends for a
job at a time, across machines (the lease and its fencing: ``_journal_lease``).

Keys (one hash tag per job, so a cluster keeps them on one slot)::

    opentrain:journal:{NAME}:records   list of JSON records (the file journal's lines)
    opentrain:journal:{NAME}:lease     hash: owner, token, host, pid, machine, since
    opentrain:journal:{NAME}:fence     counter: the lease's fencing token (kept while a
                                       run holds the lease, then as long as the records:
                                       all three missing means Redis lost the job)

**Records** are appended with one Lua script per batch (group commit: every record
written while a round trip is under way goes in the next one), and the script appends
only while the lease is ours: a runner that lost its lease can record nothing.  Each
append renews the lease and pushes the records' expiry to ``retention`` after the last
write, so a finished or abandoned job's records go away on their own (default 7 days).
The scripts are ``_redis/lua/journal_*.lua``, loaded by ``_redis.scripts.register``.

The password is never printed: ``RedisJournalURL`` shows it as ``***`` and every error
raised here is built from that redacted form, with no exception chain from the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from opentrain_async._errors import OpenTrainError
from opentrain_async._json import json_loads  # deep nesting: ValueError, no crash
from opentrain_async._redis import scripts

from ._journal import CorruptRecordError, JournalError, StoredRecords
from ._journal_lease import (
    GONE,
    NOT_OURS,
    JournalBusyError,
    JournalLease,
    JournalLostError,
    LeaseHolder,
    describe_redis_error,
    lease_clock,
)
from ._journal_redis_url import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    RedisJournalURL,
    is_redis_url,
    parse_duration,
)

if TYPE_CHECKING:
    import aiohttp
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_RETENTION",
    "GONE",
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

MAX_BATCH = 1000
"""Records per append script call (Lua's unpack() has a stack limit)."""
READ_CHUNK = 10_000


class JournalUnavailableError(JournalError, OpenTrainError):
    """The journal's Redis cannot be reached or refused us before the run started."""


async def _lrange(key: str, start: int, stop: int, redis: Redis) -> list[Any]:
    return list(await redis.lrange(key, start, stop))


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
    the process is stopped or the machine suspended).  ``lease`` is the run's
    ``JournalLease``; the send checks (``confirm_send``, ``check_send``, ``lost``,
    ``gone``, ``trace_config``) are its.
    """

    def __init__(
        self,
        url: RedisJournalURL,
        *,
        read_only: bool = False,
        client: Redis | None = None,
        clock: Callable[[], float] = lease_clock,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.url = url
        self.name = url.redacted()
        self.read_only = read_only
        self._client = client
        self._retention_ms = round(url.retention * 1000)
        self._scripts: dict[str, AsyncScript] = {}
        self.lease = JournalLease(url, self._run_script, clock=clock, host=host, pid=pid)
        self.records = 0
        """Records this run appended."""

    def __repr__(self) -> str:
        return f"RedisJournalStore({self.name!r}, token={self.token})"

    @property
    def _redis(self) -> Redis:
        if self._client is None:
            self._client = self.url.connect()
        return self._client

    async def _run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run ``_redis/lua/NAME.lua`` on this store's client (``scripts.register``,
        once per name)."""
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = scripts.register(self._redis, name)
        return await script(keys=keys, args=args)

    # -- the lease's, for the run ----------------------------------------------------

    @property
    def host(self) -> str:
        """The host name this run's lease and run records give."""
        return self.lease.host

    @property
    def pid(self) -> int:
        """The process id this run's lease gives."""
        return self.lease.pid

    @property
    def token(self) -> int | None:
        """The lease's fencing token (None until ``open``)."""
        return self.lease.token

    @property
    def took_over(self) -> LeaseHolder | None:
        """The dead holder this run took the lease from, if any."""
        return self.lease.took_over

    @property
    def gone(self) -> bool:
        """Redis no longer holds this job at all (restarted empty, flushed)."""
        return self.lease.gone

    @property
    def lost(self) -> str | None:
        """Why this run may no longer send or record (None while the lease holds)."""
        return self.lease.lost

    async def confirm_send(self) -> None:
        """Before each POST: the lease's time left in Redis (``JournalLease``)."""
        await self.lease.confirm_send()

    def check_send(self) -> None:
        """Raise ``JournalLostError`` unless this run may start a send now."""
        self.lease.check_send()

    def trace_config(self) -> aiohttp.TraceConfig:
        """aiohttp hooks that stop every POST once the lease is lost (``JournalLease``)."""
        return self.lease.trace_config()

    # -- JournalStore ----------------------------------------------------------------

    async def open(self) -> None:
        """Take the job's lease (``JournalBusyError`` naming a live holder;
        ``JournalUnavailableError`` when Redis cannot be reached).  On failure the
        connection is closed: the caller has nothing to clean up."""
        try:
            if self.read_only:
                await self._call_at_start(lambda r: r.ping())
            else:
                await self._call_at_start(lambda _: self.lease.acquire())
        except BaseException:
            await self.close()
            raise

    async def read(self) -> StoredRecords:
        """Every record of the job, oldest first (Redis never holds a torn one)."""
        records: list[dict[str, Any]] = []
        start = 0
        while True:
            stop = start + READ_CHUNK - 1
            chunk = await self._call_at_start(
                functools.partial(_lrange, self.lease.k_records, start, stop)
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
        await self.lease.release()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()

    # -- writing under the lease -----------------------------------------------------

    async def _write(self, records: Sequence[Mapping[str, Any]], *, first: bool) -> None:
        lease = self.lease
        lease.raise_if_lost()
        encoded = [encode_record(self._stamp(r)) for r in records]
        sent = lease.clock()
        length: Any = None
        try:
            length = await self._run_script(
                "journal_append",
                lease.keys,
                [lease.owner, lease.lease_ms, self._retention_ms, 1 if first else 0, *encoded],
            )
        except Exception as exc:
            lease.lose(f"Redis failed: {describe_redis_error(exc)}")
        if length is None:  # raised outside the handler: nothing of the client's attached
            lease.raise_lost()
        if int(length) == -4:
            lease.lose(GONE)
            lease.raise_lost()
        if int(length) == -1:
            lease.lose(NOT_OURS)
            lease.raise_lost()
        if int(length) == -2:
            raise JournalError(f"journal {self.name} was created by another run at the same time")
        lease.confirmed(sent)
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
            reason = describe_redis_error(exc)
        # Raised outside the handler: no __context__ pointing at the client's exception
        # (and cleared after: Python 3.10 may attach one handled further up the stack).
        error = JournalUnavailableError(f"cannot use the journal at {self.name}: {reason}")
        try:
            raise error
        finally:
            error.__context__ = None


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
