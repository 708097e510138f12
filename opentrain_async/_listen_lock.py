"""One position, one listener: the exclusion ``listen()`` holds for its whole life.

Two ``listen()`` loops on one position (a rolling restart whose new bot starts before
the old one stopped) are each handed the same message, and their ``reply()``s, reading
back at the same moment, both send.  So ``listen()`` holds its store's position from
before its first ``load()`` until it ends (finished, closed, raised, cancelled), through
the store's optional ``hold()``:

- ``JSONFileCursorStore``: an ``flock`` on a sidecar ``<cursor file>.lock`` (the cursor
  file itself is replaced by every save, so it cannot carry the lock).  The kernel drops
  it when the process dies, ``kill -9`` included.  The lock file stays: deleting it
  while another listener may be opening it would let two hold "the" lock.  No ``fcntl``
  (Windows): no lock; a file system refusing ``flock`` (ENOLCK): a WARNING, no lock.
- ``MemoryCursorStore``: a flag on the object (one process).

A second listener waits, polling, with one WARNING naming the file and the holder, and
then goes on from the position the first one saved; ``lock_timeout`` bounds the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: the file store takes no lock
    fcntl = None  # type: ignore[assignment]

__all__ = ["POLL", "CursorLock", "FileLock", "FlagLock", "HeldLock", "hold_store", "lock_path"]

logger = logging.getLogger("opentrain_async")

POLL = 0.25
"""Seconds between two tries of a lock held by another listener."""
_NAME_MAX = 255


def lock_path(cursor: Path) -> Path:
    """The sidecar lock of a cursor file (already resolved): ``<name>.lock`` beside it,
    or a shortened name plus a hash when that would pass the file system's name limit."""
    name = cursor.name
    if len(os.fsencode(name)) + len(".lock") > _NAME_MAX:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
        name = f"{name[:100]}.{digest}"
    return cursor.with_name(f"{name}.lock")


async def wait_until_taken(
    take: Callable[[], bool],
    what: str,
    holder: Callable[[], str],
    *,
    timeout: float | None,
    sleep: Callable[[float], Awaitable[Any]],
    clock: Callable[[], float],
) -> None:
    """Call ``take`` (never blocking) until it returns True, ``sleep``ing in between.

    Logs one WARNING when it has to wait and one INFO when it got through; after
    ``timeout`` seconds (None: never) a ``ConfigurationError`` naming ``what``.
    Cancelling the caller stops the wait at once.
    """
    if take():
        return
    deadline = None if timeout is None else clock() + timeout
    logger.warning(
        "listen(): %s is in use by another listener%s; waiting for it to stop "
        "(one position, one listener)",
        what,
        holder(),
    )
    while True:
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            raise ConfigurationError(
                f"listen(): {what} is still in use by another listener{holder()} after "
                f"lock_timeout={timeout:g}s; stop that bot first, or wait longer"
            )
        await sleep(POLL if left is None else min(POLL, left))
        if take():
            logger.info("listen(): %s is free now; going on from its saved position", what)
            return


_OPEN: weakref.WeakSet[FileLock] = weakref.WeakSet()
"""The ``FileLock``s of this process with a lock file open (see ``_forget_in_child``)."""


def _forget_in_child() -> None:
    """After ``fork()``: close the child's copies of the lock files, unlocked.

    The child shares each open file description with its parent, and an ``flock``
    lasts until the last copy closes: a worker forked by the bot (``multiprocessing``,
    a ``fork()`` of its own) would hold the cursor file after the bot stopped, and the
    next bot would wait for it forever.  Closing a copy does not unlock the parent's.
    """
    for lock in list(_OPEN):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_in_child)


class FileLock:
    """An exclusive ``flock`` on one lock file, taken without blocking (``try_take``)."""

    def __init__(self, path: Path, cursor: Path) -> None:
        self.path = path
        self._cursor = cursor
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, 0o600)
            _OPEN.add(self)
            return fd
        except OSError as exc:
            raise ConfigurationError(
                f"cannot take the lock {self.path} of the cursor file {self._cursor}: "
                f"{exc.strerror or exc}"
            ) from None

    def try_take(self) -> bool:
        """True once this object holds the lock; False while another holds it."""
        if fcntl is None:  # Windows: no lock (documented)
            return True
        for _ in range(3):  # the file was replaced between open and lock: open it again
            if self._fd is None:
                self._fd = self._open()
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    return False
                # ENOLCK, EOPNOTSUPP: a file system without flock.  Refusing to run
                # would stop a bot that worked before; say what is not promised.
                logger.warning(
                    "listen(): the cursor file %s cannot be locked (%s): nothing keeps a "
                    "second bot off it, and both would answer",
                    self._cursor,
                    exc.strerror or exc,
                )
                return True
            if self._still_there():
                self._write_holder()
                return True
            self.release()
        return False

    def _still_there(self) -> bool:
        """Whether the locked file is still the one at ``path`` (not deleted since)."""
        assert self._fd is not None
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self._fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def _write_holder(self) -> None:
        assert self._fd is not None
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def holder(self) -> str:
        """`` (pid N on host)``, as the holder wrote it, or nothing."""
        if self._fd is None:
            return ""
        try:
            text = os.pread(self._fd, 200, 0).decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f" ({text})" if text else ""

    def release(self) -> None:
        """Let go (closing the file releases the ``flock``); the file stays."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class CursorLock:
    """The locks of the cursor file named ``path``: its target's (``resolve()``, found
    again at every try) and, when ``path`` is itself a symlink, the link's own; both
    taken or neither (no lock is held while waiting for another, so no deadlock).

    The link's lock keeps a bot off while the link is pointed elsewhere: the old bot
    holds the old target's lock but saves where the link points now, and the new bot,
    locking only the new target, would run beside it."""

    def __init__(self, path: Path, resolve: Callable[[], Path]) -> None:
        self._path = path
        self._resolve = resolve
        self._locks: list[FileLock] = []
        self._blocked: FileLock | None = None

    def _wanted(self) -> list[FileLock]:
        target = self._resolve()
        paths = [(lock_path(target), target)]
        if os.path.islink(self._path):  # the link itself, its directories resolved
            link = Path(os.path.realpath(self._path.parent)) / self._path.name
            paths.insert(0, (lock_path(link), link))
        if [lock.path for lock in self._locks] != [path for path, _ in paths]:
            self.release()
            self._locks = [FileLock(path, cursor) for path, cursor in paths]
        return self._locks

    def try_take(self) -> bool:
        """True once this object holds every lock; False (holding none) otherwise."""
        taken: list[FileLock] = []
        for lock in self._wanted():
            if not lock.try_take():
                self._blocked = lock
                for other in taken:
                    other.release()
                return False
            taken.append(lock)
        return True

    def holder(self) -> str:
        return "" if self._blocked is None else self._blocked.holder()

    def release(self) -> None:
        for lock in self._locks:
            lock.release()


class FlagLock:
    """The in-process lock of a ``MemoryCursorStore``: a flag (one event loop at a time)."""

    def __init__(self) -> None:
        self._held = False

    def try_take(self) -> bool:
        if self._held:
            return False
        self._held = True
        return True

    def holder(self) -> str:
        return ""

    def release(self) -> None:
        self._held = False


class HeldLock:
    """Hold ``lock`` for an ``async with`` block, waiting (``wait_until_taken``) while
    another does.  A class, not an ``asynccontextmanager``: an async generator inside
    ``listen()``'s would be closed out of order when the loop shuts down."""

    def __init__(
        self,
        lock: CursorLock | FlagLock,
        what: str,
        *,
        timeout: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = lock
        self._what = what
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._taken = False

    async def __aenter__(self) -> None:
        lock = self._lock
        try:
            await wait_until_taken(
                lock.try_take,
                self._what,
                lock.holder,
                timeout=self._timeout,
                sleep=self._sleep,
                clock=self._clock,
            )
        except BaseException:
            if isinstance(lock, CursorLock):  # close the files opened for the tries
                lock.release()
            raise
        self._taken = True

    async def __aexit__(self, *exc: object) -> None:
        if self._taken:
            self._taken = False
            self._lock.release()


def hold_store(store: object) -> AbstractAsyncContextManager[object]:
    """The store's ``hold()`` (its exclusion for one listener), or nothing to hold."""
    hold = getattr(store, "hold", None)
    if hold is None:
        return contextlib.nullcontext()
    held = hold() if callable(hold) else None
    if asyncio.iscoroutine(held):  # ``async def hold()``: not a context manager
        held.close()
    if not (
        callable(getattr(held, "__aenter__", None)) and callable(getattr(held, "__aexit__", None))
    ):
        raise ConfigurationError(
            f"{type(store).__name__}.hold() must return an async context manager (held "
            f"while one listen() runs), got {type(held).__name__}"
        )
    return held  # type: ignore[return-value]
