"""The bulk journal: an append-only JSON Lines file that makes a job crash-safe.

One line per event, written with a single ``write`` on an ``O_APPEND`` descriptor and
made durable (fsync) before the caller goes on::

    {"event": "run", "at": 1760000000.1, "pid": 4242, "version": "0.1.0"}
    {"event": "started", "id": "key:invoice-7", "line": 3, "conversationId": "conv_1",
     "sha256": "…", "at": 1760000000.2}
    {"event": "ended", "id": "key:invoice-7", "ok": true, "messageId": "msg_9", "at": …}
    {"event": "ended", "id": "line:4:…", "ok": false, "kind": "read_only_conversation",
     "code": "CONFLICT", "status": 409, "error": "…", "final": true, "at": …}

An input's identity is its ``key`` when it has one, else its line number plus the
SHA-256 of ``conversationId`` NUL ``content``.  The journal never holds the token and
never the content (only that hash).

Durability uses group commit: every ``append`` waits until an fsync that began after
its write has finished, and one fsync (in a worker thread) covers every record written
before it, so a run pays for far fewer fsyncs than records.

A process killed mid-write leaves a torn last line: ``load`` ignores it, and opening
the journal for appending cuts it off so the next record starts on a fresh line.  A
corrupt line anywhere else is an error (``JournalError``), never silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from opentrain_async._version import __version__

__all__ = [
    "Journal",
    "JournalError",
    "JournalState",
    "Progress",
    "content_hash",
    "identity",
    "load_journal",
    "open_journal",
]

try:  # POSIX: refuse two runs on one journal at once
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class JournalError(Exception):
    """The journal cannot be used: corrupt in the middle, unreadable, or in use."""


def content_hash(conversation_id: str, content: str) -> str:
    """SHA-256 (hex) of ``conversation_id`` NUL ``content``, as recorded in the journal."""
    data = f"{conversation_id}\x00{content}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def identity(line: int, key: str | None, digest: str) -> str:
    """An input's identity: ``key:<key>``, or ``line:<n>:<sha256>`` without a key."""
    if key:
        return f"key:{key}"
    return f"line:{line}:{digest}"


@attrs.define
class Progress:
    """What the journal says about one input."""

    first_started: float | None = None
    """Wall-clock time of its first ``started`` record (read-back looks from there)."""
    last_started: float | None = None
    open: bool = False
    """Started and not ended since: the outcome is unknown."""
    ok: bool = False
    message_id: str | None = None
    kind: str | None = None
    """The failure kind of its last ``ended`` record, when it failed."""
    final: bool = True
    """False for failures that stopped the run (401, unreachable): retried automatically."""
    sha256: str | None = None


@attrs.define
class JournalState:
    """Everything ``load_journal`` learned, by identity."""

    inputs: dict[str, Progress] = attrs.Factory(dict)
    delivered_ids: set[str] = attrs.Factory(set)
    """Message ids already attributed to an input (never attribute one twice)."""
    torn_tail: bool = False
    runs: int = 0


def load_journal(path: Path) -> JournalState:
    """Read a journal (missing file: empty state); ignores a torn final line."""
    state = JournalState()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return state
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    lines = raw.split(b"\n")
    # Everything after the last newline is either empty or a torn write.
    complete, tail = lines[:-1], lines[-1]
    if tail.strip():
        state.torn_tail = True
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            _apply(state, record)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # Recursion: deep
            raise JournalError(
                f"journal {path} is corrupt at line {number} ({exc}); it was not written "
                "by this tool or two runs wrote it at once"
            ) from None
    return state


def _apply(state: JournalState, record: Mapping[str, Any]) -> None:
    event = record["event"]
    if event == "run":
        state.runs += 1
        return
    if event not in ("started", "ended"):
        return  # written by a newer version: ignore what we do not know
    ident = str(record["id"])
    progress = state.inputs.setdefault(ident, Progress())
    at = float(record["at"])
    if event == "started":
        if progress.first_started is None:
            progress.first_started = at
        progress.last_started = at
        progress.open = True
        progress.sha256 = record.get("sha256", progress.sha256)
        return
    progress.open = False
    if record["ok"]:
        progress.ok = True
        progress.kind = None
        progress.message_id = str(record["messageId"])
        state.delivered_ids.add(progress.message_id)
    else:
        progress.ok = False
        progress.kind = str(record.get("kind") or "error")
        progress.final = bool(record.get("final", True))


def open_journal(path: Path, *, fsync: bool = True) -> tuple[Journal, JournalState]:
    """Lock the journal for this run, read what it holds, and cut any torn last line."""
    journal = Journal(path, fsync=fsync)
    try:
        state = load_journal(path)
        journal.cut_torn_tail()
    except BaseException:
        journal.close_now()
        raise
    return journal, state


class Journal:
    """An open, locked journal for appending, with group-committed fsyncs."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self._fsync_enabled = fsync
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open journal {path}: {exc.strerror or exc}") from None
        self._fd = fd
        try:
            self._lock()
        except BaseException:
            os.close(fd)
            raise
        self._written = 0
        self._synced = 0
        self._flush: asyncio.Future[None] | None = None
        self.records = 0

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JournalError(f"journal {self.path} is in use by another running job") from None

    def cut_torn_tail(self) -> None:
        """Drop a partial last line left by a killed process, so appends start clean."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        chunk = min(size, 1 << 16)
        offset = size
        while offset > 0:
            start = max(0, offset - chunk)
            data = os.pread(self._fd, offset - start, start)
            newline = data.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                if end != size:
                    os.ftruncate(self._fd, end)
                return
            offset = start
        os.ftruncate(self._fd, 0)

    async def append(self, record: Mapping[str, Any]) -> None:
        """Write one record and return once it is on disk."""
        self.write(record)
        if self._fsync_enabled:
            await self._durable(self._written)

    def write(self, record: Mapping[str, Any]) -> None:
        """Write one record without waiting for the disk (call ``append`` to wait)."""
        data = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode(
            "utf-8", "surrogatepass"
        )
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._written += 1
        self.records += 1

    async def _durable(self, sequence: int) -> None:
        while self._synced < sequence:
            if self._flush is None or self._flush.done():
                self._flush = asyncio.ensure_future(self._sync())
            await asyncio.shield(self._flush)

    async def _sync(self) -> None:
        target = self._written
        await asyncio.to_thread(os.fsync, self._fd)
        self._synced = max(self._synced, target)

    def close_now(self) -> None:
        """Close without waiting for the disk (after an error)."""
        os.close(self._fd)

    async def aclose(self) -> None:
        """Finish any fsync under way and close the file (releasing the lock)."""
        if self._flush is not None and not self._flush.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flush)
        if self._fsync_enabled and self._synced < self._written:
            await asyncio.to_thread(os.fsync, self._fd)
        os.close(self._fd)

    # -- the records ------------------------------------------------------------------

    async def run_started(self, source: str) -> None:
        """A header for one run (for people reading the journal)."""
        await self.append(
            {
                "event": "run",
                "at": time.time(),
                "pid": os.getpid(),
                "input": source,
                "version": __version__,
            }
        )

    async def started(
        self, ident: str, line: int, conversation_id: str, digest: str, at: float
    ) -> None:
        """An input's send is about to start."""
        await self.append(
            {
                "event": "started",
                "id": ident,
                "line": line,
                "conversationId": conversation_id,
                "sha256": digest,
                "at": at,
            }
        )

    async def ended_ok(self, ident: str, message_id: str, *, reconciled: bool) -> None:
        """An input was delivered as ``message_id``."""
        record: dict[str, Any] = {
            "event": "ended",
            "id": ident,
            "ok": True,
            "messageId": message_id,
            "at": time.time(),
        }
        if reconciled:
            record["reconciled"] = True
        await self.append(record)

    async def ended_failed(
        self,
        ident: str,
        *,
        kind: str,
        error: str,
        code: str | None = None,
        status: int | None = None,
        final: bool = True,
    ) -> None:
        """An input was not delivered (``final=False``: retry it on the next run)."""
        record: dict[str, Any] = {
            "event": "ended",
            "id": ident,
            "ok": False,
            "kind": kind,
            "error": error[:300],
            "final": final,
            "at": time.time(),
        }
        if code is not None:
            record["code"] = code
        if status is not None:
            record["status"] = status
        await self.append(record)
