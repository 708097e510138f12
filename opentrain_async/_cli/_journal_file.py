"""``FileJournalStore``: a journal as a JSON Lines file, each write ``fsync``ed, one run
at a time (an ``flock``), a torn last line cut off before the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentrain_async._json import json_loads  # deep nesting: ValueError, no crash

from ._journal_store import CorruptRecordError, JournalError, StoredRecords, not_ours

__all__ = ["FileJournalStore", "first_record"]

_HEADER_BYTES = 1 << 20
"""Bytes read for a file's first line by ``first_record``: a journal's header holds the
input's path (at most a few KiB) and a fingerprint, so a longer line is no header of ours."""

try:  # POSIX: refuse two runs on one journal at once
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _encode(records: Sequence[Mapping[str, Any]]) -> bytes:
    return "".join(
        json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records
    ).encode("utf-8", "surrogatepass")


def first_record(path: Path) -> Any:
    """The first line of the file at ``path`` as JSON, to tell a journal (its header)
    from other files without opening it as one: None when empty, not JSON, or longer
    than any header of ours (``_HEADER_BYTES``).  ``OSError`` when it cannot be read."""
    with path.open("rb") as file:
        first = file.readline(_HEADER_BYTES)
    try:
        return json_loads(first) if first.strip() else None
    except ValueError:
        return None


class FileJournalStore:
    """A journal in one JSON Lines file: ``O_APPEND`` writes, ``fsync``, ``flock``.

    Refuses anything that is not a regular file (``/dev/zero``, a FIFO, a directory).
    A new journal is written to a temporary file with its header, fsynced and linked
    into place, so the path never holds a partial header.
    """

    def __init__(self, path: Path, *, fsync: bool = True, read_only: bool = False) -> None:
        self.path = path
        self.name = str(path)
        self._fsync = fsync
        self._read_only = read_only
        """Only ``read`` (``--dry-run``): no lock, so it works while a job runs."""
        self._fd: int | None = None
        self._torn_checked = False

    def __repr__(self) -> str:
        return f"FileJournalStore({self.name!r})"

    async def open(self) -> None:
        flags = os.O_RDONLY if self._read_only else os.O_RDWR | os.O_APPEND
        try:
            fd = os.open(self.path, flags | os.O_NONBLOCK)
        except FileNotFoundError:
            return  # created by ``create``
        except IsADirectoryError:
            raise JournalError(f"journal {self.name} is a directory, not a file") from None
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.name}: {exc.strerror or exc}") from None
        self._adopt(fd)

    def _adopt(self, fd: int) -> None:
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise JournalError(
                    f"journal {self.name} is not a regular file (a device, FIFO or socket); "
                    "refusing to use it"
                )
            os.set_blocking(fd, True)
            if fcntl is not None and not self._read_only:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise JournalError(
                        f"journal {self.name} is in use by another running job"
                        f"{_holder(fd)}; wait for it to finish, or stop it"
                    ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    async def read(self) -> StoredRecords:
        if self._fd is None:
            return StoredRecords([])
        raw = _read_all(self._fd)
        lines = raw.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # after the last newline: empty or torn
        records: list[dict[str, Any]] = []
        for index, line in enumerate(complete):
            if not line.strip():
                continue
            try:
                record = json_loads(line)
            except ValueError as exc:
                raise CorruptRecordError(len(records), f"line {index + 1}: {exc}") from None
            if not isinstance(record, dict):
                raise CorruptRecordError(len(records), f"line {index + 1}: not an object")
            records.append(record)
        return StoredRecords(records, torn=bool(tail.strip()))

    async def create(self, header: Mapping[str, Any]) -> None:
        if self._fd is not None:  # an existing empty file (``read`` found no record)
            if os.fstat(self._fd).st_size:
                raise not_ours(self.name, "it holds no journal header")
            self._torn_checked = True
            await asyncio.to_thread(self._append, _encode([header]))
            return
        directory = self.path.parent
        try:
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name[:100]}.", dir=directory)
        except OSError as exc:
            raise JournalError(
                f"cannot create journal {self.name}: {exc.strerror or exc}"
            ) from None
        try:
            os.write(fd, _encode([header]))
            if self._fsync:
                os.fsync(fd)
            os.close(fd)
            try:
                os.link(temp, self.path)  # atomic, and never replaces an existing file
            except FileExistsError:
                raise _exists_error(self.path) from None
            except OSError as exc:
                raise JournalError(
                    f"cannot create journal {self.name}: {exc.strerror or exc}"
                ) from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        if self._fsync:
            _fsync_directory(directory)
        await self.open()
        self._torn_checked = True

    async def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        data = _encode(records)
        await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise JournalError(f"journal {self.name} is not open")
        if not self._torn_checked:
            _cut_torn_tail(fd)
            self._torn_checked = True
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if self._fsync:
            os.fsync(fd)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


_HOLDER_SCAN = 64 << 20


def _holder(fd: int) -> str:
    """`` (pid N, started at ...)``: the last run recorded in the journal open at `fd` (the
    one that holds its lock), read from its last 64 MiB; empty if none is found."""
    size = os.fstat(fd).st_size
    start = max(0, size - _HOLDER_SCAN)
    data = os.pread(fd, size - start, start)
    for line in reversed(data.split(b"\n")):
        if b'"run"' not in line:
            continue
        try:
            record = json_loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "run":
            pid = record.get("pid")
            at = record.get("at")
            since = (
                time.strftime(", started %Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
                if isinstance(at, int | float)
                else ""
            )
            return f" (last run recorded: pid {pid}{since})" if isinstance(pid, int) else ""
    return ""


def _exists_error(path: Path) -> JournalError:
    """Why a new journal could not be linked into place: a dangling symlink, or a run
    that created it first."""
    if path.is_symlink() and not path.exists():
        return JournalError(
            f"journal {path} is a symbolic link to {os.readlink(path)}, which does not "
            "exist; refusing to write a journal through it (nothing was sent). Create the "
            "target's directory and file, or pass another --journal"
        )
    return JournalError(f"journal {path} was created by another run at the same time")


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def _cut_torn_tail(fd: int) -> None:
    """Drop a partial last line left by a killed process, so appends start clean."""
    size = os.fstat(fd).st_size
    chunk = min(size, 1 << 16)
    offset = size
    while offset > 0:
        start = max(0, offset - chunk)
        data = os.pread(fd, offset - start, start)
        newline = data.rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            if end != size:
                os.ftruncate(fd, end)
            return
        offset = start
    # No newline at all: the header is always written whole, so this is not ours.
    raise JournalError("refusing to truncate a journal without a complete header")


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
