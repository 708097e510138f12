"""The lease of a Redis journal and its fencing: one runner sends for a job at a time.

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

**Gone or expired.**  Every script that finds the lease not ours tells the two apart
the same way: the job is gone (Redis restarted empty or was flushed: a rerun sends every
input again) when the lease, the records and the fence are all missing.  The fence lives
as long as the job (persisted while a run holds the lease, then the records' retention),
so a lease that merely expired leaves it, and a rerun resumes.

The scripts are ``_redis/lua/journal_*.lua``; the store (``_journal_redis``) runs them
for this module through ``run`` and appends records under the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

import aiohttp
import attrs

from opentrain_async._errors import OpenTrainError

from ._journal import JournalError
from ._journal_redis_url import RedisJournalURL

__all__ = [
    "GONE",
    "NOT_OURS",
    "JournalBusyError",
    "JournalLease",
    "JournalLostError",
    "LeaseHolder",
    "describe_redis_error",
    "lease_clock",
]

GONE = "its records and lease are gone from Redis"
NOT_OURS = "its lease expired in Redis (or was taken over by another run)"
"""Why a script found the lease not ours: its key expired (the run paused past it, Redis
evicted it, its clock jumped) or another run holds it; a script cannot tell which."""

RunScript = Callable[[str, list[str], list[Any]], Awaitable[Any]]
"""``run(name, keys, args)``: the script ``_redis/lua/NAME.lua`` on the journal's Redis."""


class JournalBusyError(JournalError, OpenTrainError):
    """Another live run holds the job's lease."""

    def __init__(self, message: str, holder: LeaseHolder) -> None:
        super().__init__(message)
        self.holder = holder


class JournalRecordsLostError(JournalError, OpenTrainError):
    """A run wrote the job's journal, and its records are gone from Redis since: a new
    journal would resend what they said was delivered, so the run refuses to start."""


class JournalLostError(JournalError, OpenTrainError):
    """The run lost its journal mid-run (Redis gone, or the lease taken over): it must
    stop sending, since nothing more it does can be recorded."""


def _records_lost(where: str, written: str) -> str:
    return (
        f"{where}: a run wrote this job's journal, but its records are gone from Redis "
        "(evicted under a maxmemory policy, or deleted); a new journal would send the "
        "inputs it delivered again. Give the journal's Redis maxmemory-policy "
        f"noeviction; to start the job over knowingly, delete the key {written}"
    )


def lease_clock() -> float:
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


def describe_redis_error(exc: BaseException) -> str:
    """A short reason from a redis-py error (its messages hold host/port, no password)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class JournalLease:
    """One run's lease on a job: acquire, renew, fence every send, release.

    ``run`` runs a journal script (``RunScript``); ``clock`` measures the local deadline
    (it must keep counting while the process is stopped or the machine suspended).
    ``lost`` says why this run may no longer send or record; the store appends only
    after ``raise_if_lost`` and reports each append's word on the lease back here.
    """

    def __init__(
        self,
        url: RedisJournalURL,
        run: RunScript,
        *,
        clock: Callable[[], float] = lease_clock,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.url = url
        self._run = run
        self.clock = clock
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self._machine = _machine_id()
        self.owner = os.urandom(16).hex()
        self.token: int | None = None
        self.lease_ms = round(url.lease * 1000)
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
        self.renewer: asyncio.Task[None] | None = None
        self._releasing = False
        """Set as ``release`` stops the renewer: a cancel alone may be lost (see there)."""
        self.took_over: LeaseHolder | None = None
        """The dead holder this run took the lease from, if any."""
        self.k_lease = url.key("lease")
        self.k_records = url.key("records")
        self.k_fence = url.key("fence")
        self.k_written = url.key("written")
        """Set by each append to when the records expire, kept as long as the fence:
        records gone before that were lost (evicted, deleted), not never written; gone
        after it, they expired at their retention (``journal_acquire.lua``)."""
        self.keys = [self.k_lease, self.k_records, self.k_fence, self.k_written]
        """KEYS of the journal scripts but acquire."""

    async def acquire(self) -> None:
        """Take the lease, or raise ``JournalBusyError`` naming its live holder (a holder
        that died on this machine is taken over at once)."""
        steal = ""
        holder: LeaseHolder | None = None
        for _ in range(2):
            sent = self.clock()
            args: list[Any] = [self.owner, self.lease_ms, self.host, self.pid]
            args += [self._machine or "", f"{time.time():.3f}", steal]
            keys = [self.k_lease, self.k_fence, self.k_records, self.k_written]
            reply = await self._run("journal_acquire", keys, args)
            if int(reply[0]) == -5:
                raise JournalRecordsLostError(_records_lost(self.url.where, self.k_written))
            if int(reply[0]) == 1:
                self.token = int(reply[1])
                self._valid_until = sent + self.url.lease - self._margin
                self.renewer = asyncio.create_task(self._renew_forever())
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

    async def release(self) -> None:
        """Stop renewing and give the lease back (records then expire after the
        retention).  Never raises: at worst the lease just expires.

        The renewer is stopped by ``_releasing`` as well as by the cancel: on Python
        3.10 and 3.11 redis-py's ``asyncio.wait_for`` (around writing a command) returns
        the call's result instead of raising when the cancel lands as the write
        completes, and the renewer, its cancel lost, renewed forever while this waited
        for it (a CLI run that never ended)."""
        if self.renewer is not None:
            self._releasing = True
            self.renewer.cancel()
            with contextlib.suppress(BaseException):
                await self.renewer
            self.renewer = None
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            with contextlib.suppress(BaseException):
                await self._reading
        if self.token is not None and self._lost is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._run("journal_release", self.keys, [self.owner, self._retention_ms]),
                    timeout=max(2.0, self.url.lease / 3),
                )
            self.lose("the run ended")

    async def _renew_forever(self) -> None:
        interval = self.url.lease / 3
        while self._lost is None and not self._releasing:
            await asyncio.sleep(interval)
            sent = self.clock()
            try:
                held = await self._run("journal_renew", self.keys, [self.owner, self.lease_ms])
            except Exception as exc:
                # Keep trying: the deadline stops sends if Redis stays away.
                if self.clock() > self._valid_until:
                    self.lose(f"Redis unreachable ({describe_redis_error(exc)})")
                continue
            if int(held) != 1:
                gone = int(held) == -4
                self.lose(GONE if gone else NOT_OURS)
                return
            self.confirmed(sent)

    def confirmed(self, sent: float) -> None:
        """Redis renewed the lease in a call started at ``sent``."""
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
        sent = self.clock()
        try:
            remaining = int(await self._run("journal_remaining", self.keys, [self.owner]))
        except Exception:
            return
        if remaining == -4:
            self.lose(GONE)
        elif remaining == -3 or remaining == -2:
            self.lose(NOT_OURS)
        elif remaining >= 0:
            self._observed(sent, remaining / 1000)

    def lose(self, why: str) -> None:
        """This run may no longer send or record, because ``why`` (the first reason stays)."""
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
            now = self.clock()
            if now > self._valid_until:
                self.lose("its lease could not be renewed in time")
            elif now > self._redis_until:
                self.lose("its lease is about to expire as Redis counts time")
        return self._lost

    def check_send(self) -> None:
        """Raise ``JournalLostError`` unless this run may start a send now."""
        why = self.lost
        if why is not None:
            raise JournalLostError(self._lost_message(why))

    def raise_if_lost(self) -> None:
        """Raise ``JournalLostError`` if the lease is known lost (no deadline check: a
        write is itself checked in Redis)."""
        if self._lost is not None:
            self.raise_lost()

    def raise_lost(self) -> NoReturn:
        """Raise ``JournalLostError`` for the reason the lease was lost."""
        raise JournalLostError(self._lost_message(self._lost or ""))

    def _lost_message(self, why: str) -> str:
        if why == GONE:
            return (
                f"stopped sending: the journal for {self.url.where} is gone from Redis (it "
                "restarted empty, was flushed, or the records expired or were evicted under "
                "maxmemory); no further send was "
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
