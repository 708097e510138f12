"""One run per job content at a time: a lock named by what the job holds, not its path.

A file journal is locked by its own path; a job file under two paths (a hard link, a
bind mount, a copy) has two default journals, and two runs started together would
each hold their own and send everything twice.  So a run journaling to a file first
takes ``jobs/locks/<fingerprint>.lock`` (``flock``, held until the run ends), where the
fingerprint is ``job_fingerprint``: the same inputs under any path or line order have
the same one.  A second run of the same content is refused (exit 2), naming the first.

The lock files stay (a few dozen bytes each): removing one while another run may be
opening it would let two runs hold "the" lock at once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType

from ._journal import JournalError

__all__ = ["ContentLock"]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no content lock
    fcntl = None  # type: ignore[assignment]


class ContentLock:
    """``with ContentLock(directory, fingerprint, what):`` holds the job's content lock."""

    def __init__(
        self,
        directory: Path,
        fingerprint: str,
        what: str,
        *,
        fallback: Path | None = None,
        required: bool = True,
    ) -> None:
        self.path = directory / f"{fingerprint[:32]}.lock"
        self._fallback = None if fallback is None else fallback / f".{self.path.name}"
        """Where the lock goes when the per-user directory cannot be written (an explicit
        --journal in a container with a read-only HOME): beside that journal."""
        self._what = what
        self._fd: int | None = None
        self._required = required
        """False: a lock that cannot be created is skipped (a Redis journal's lease
        still keeps its job name to one run); one held by another run still refuses."""

    def _open(self) -> int | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if not self._required:
                return None
            if self._fallback is None:
                raise JournalError(
                    f"cannot take the job's lock {self.path}: {exc.strerror or exc}"
                ) from None
            first = exc
        try:
            fd = os.open(self._fallback, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            raise JournalError(
                f"cannot take the job's lock {self.path}: {first.strerror or first}"
            ) from None
        self.path = self._fallback
        return fd

    def __enter__(self) -> ContentLock:
        if fcntl is None:  # pragma: no cover
            return self
        fd = self._open()
        if fd is None:
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalError(
                "the same job (the same inputs, under this or another path) is being sent "
                f"by another run right now{holder}; nothing was sent. Wait for it to finish"
            ) from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            # (backslashreplace: an input named in bytes that are not UTF-8, read as lone
            # surrogates, made this raise: a traceback before anything was sent)
            line = f"pid {os.getpid()}, input {self._what}\n"
            os.pwrite(fd, line.encode("utf-8", "backslashreplace"), 0)
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the flock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""
