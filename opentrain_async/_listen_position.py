"""Where ``listen()`` keeps its place: the saved position (a page's cursor plus the
messages finished on it and the replies sent), the reply log, and the ``CursorStore``s
that hold the position as one opaque string (memory, or a JSON file written
atomically: temp file, fsync, ``os.replace``).  ``_listen`` re-exports these names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import attrs

from ._errors import ConfigurationError
from ._listen_lock import CursorLock, FlagLock, HeldLock
from ._time import Clock
from ._validation import check_option

__all__ = [
    "CursorStore",
    "JSONFileCursorStore",
    "ListenPosition",
    "MemoryCursorStore",
    "ReplyLog",
]

FROM_BEGINNING = "@beginning"
"""Saved instead of a cursor when the feed was empty at the first start: the next
start reads from the beginning, so nothing that arrives meanwhile is skipped."""
POSITION_PREFIX = "@listen:"
"""Starts a saved position that holds more than a cursor (finished messages, replies)."""
REPLY_LOG_CAPACITY = 256
"""Reply ids ``listen()`` saves with its position (see ``ReplyLog``)."""


class ReplyLog:
    """The latest replies sent by ``OpenTrainClient.reply``: reply id -> incoming id.

    Read-back treats a reply as claimed when answering any *other* message (a reply to
    one message is never taken for the answer to another with the same text), and
    ``listen()`` saves the log with its position so that this still holds after a
    restart.  Keeps the newest ``capacity``.
    """

    def __init__(self, capacity: int = REPLY_LOG_CAPACITY) -> None:
        self._answers: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity
        self._turns: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        """``turn``'s locks in use, with how many calls hold or wait for each."""

    @contextlib.asynccontextmanager
    async def turn(self, incoming_id: str, content: str) -> AsyncIterator[None]:
        """One ``reply`` at a time per incoming message and text (this client and its
        copies): a second call while the first is under way waits for it, then finds
        its answer by read-back.  Both read back before either sent, and both sent."""
        key = (incoming_id, content)
        lock, users = self._turns.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[key]

    def add(self, reply_id: str, incoming_id: str) -> None:
        """Remember that ``reply_id`` answers ``incoming_id``."""
        self._answers[reply_id] = incoming_id
        self._answers.move_to_end(reply_id)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def restore(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember pairs saved by an earlier run (older than any added since)."""
        current = list(self.pairs())
        self._answers.clear()
        for reply_id, incoming_id in [*pairs, *current]:
            self.add(reply_id, incoming_id)

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """``(reply id, incoming id)``, oldest first."""
        return tuple(self._answers.items())

    def answers_to(self, incoming_id: str) -> set[str]:
        """The ids of the replies logged for ``incoming_id``."""
        return {reply for reply, to in self._answers.items() if to == incoming_id}

    def __contains__(self, reply_id: object) -> bool:
        return reply_id in self._answers


@attrs.frozen
class ListenPosition:
    """Where ``listen()`` resumes: the page at ``cursor`` (None: the feed's beginning)
    less the ``handled`` message ids already finished on it, and the ids of recent
    ``replies`` (see ``ReplyLog``).  Stored as one string (``encode``/``decode``)."""

    cursor: str | None
    handled: tuple[str, ...] = ()
    replies: tuple[tuple[str, str], ...] = ()

    def encode(self) -> str:
        """The string a ``CursorStore`` keeps: the bare cursor when that says it all."""
        if not self.handled and not self.replies:
            return FROM_BEGINNING if self.cursor is None else self.cursor
        replies = [list(pair) for pair in self.replies]
        state = {"cursor": self.cursor, "handled": self.handled, "replies": replies}
        return POSITION_PREFIX + json.dumps(state, separators=(",", ":"))

    @classmethod
    def decode(cls, saved: str) -> ListenPosition:
        """The position a saved string stands for (a bare cursor, as older versions
        saved, is a page with nothing finished); ``ConfigurationError`` if corrupt."""
        if saved == FROM_BEGINNING:
            return cls(None)
        if not saved.startswith(POSITION_PREFIX):
            return cls(saved)
        try:
            state = json.loads(saved[len(POSITION_PREFIX) :])
            cursor, handled, replies = state["cursor"], state["handled"], state["replies"]
        except (ValueError, TypeError, KeyError, RecursionError):
            state = cursor = handled = replies = None
        if not (
            (cursor is None or (isinstance(cursor, str) and cursor))
            and _all_ids(handled)
            and isinstance(replies, list)
            and all(
                isinstance(pair, list) and len(pair) == 2 and _all_ids(pair) for pair in replies
            )
        ):
            raise ConfigurationError(
                "the saved listen() position is corrupt; fix or delete it (deleting it "
                "makes listen() start over)"
            )
        return cls(cursor, tuple(handled), tuple((pair[0], pair[1]) for pair in replies))


def _all_ids(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


class CursorStore(Protocol):
    """Where ``listen()`` keeps its position between runs: one opaque string.

    The string is the /updates cursor, or a ``ListenPosition`` that also names the
    messages finished on that page and recent reply ids; store it as given.  ``save`` is called
    after every finished message, so it must be durable when it returns.

    Optional: ``hold()``, returning an async context manager that ``listen()`` enters
    before its first ``load()`` and leaves when it ends; it should wait while another
    listener holds the same position (see ``_listen_lock``).  Without it, nothing keeps
    two listeners off one position: a store of your own brings its own exclusion.
    """

    async def load(self) -> str | None:
        """The saved position, or None when nothing was saved yet."""

    async def save(self, cursor: str) -> None:
        """Persist ``cursor`` durably (it replaces the previous one)."""


class MemoryCursorStore:
    """A cursor kept in memory: survives ``listen()`` restarts within one process only.

    One ``listen()`` at a time: a second one on the same object waits for the first to end.
    """

    def __init__(self, cursor: str | None = None) -> None:
        self.cursor = cursor
        self.saves = 0
        self._lock = FlagLock()

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Held by one ``listen()`` from its first load to its end (see ``CursorStore``)."""
        return HeldLock(self._lock, f"this {type(self).__name__}")

    async def load(self) -> str | None:
        return self.cursor

    async def save(self, cursor: str) -> None:
        self.cursor = cursor
        self.saves += 1


class JSONFileCursorStore:
    """The default store: ``{"cursor": "...", "savedAt": "..."}`` in one JSON file.

    Writes go to a temp file in the same directory, are fsynced, then ``os.replace``d
    over the target, so the file always holds either the old or the new cursor.  A
    file that exists but cannot be read raises ``ConfigurationError`` rather than
    silently starting over (which would replay or skip messages).  A symlink is followed:
    the file it points to is read, written and locked.

    ``hold()`` (entered by ``listen()`` for its whole life) takes an ``flock`` on
    ``<file>.lock`` beside it, so that one listener at a time has this position; another
    waits for it, at most ``lock_timeout`` seconds (None: as long as it takes), polling
    through ``sleep`` and ``clock`` (the client's time seam when ``listen()`` makes it).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout: float | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        if lock_timeout is not None:
            lock_timeout = check_option(lock_timeout, "lock_timeout", minimum=0, unit=" s")
        self.lock_timeout = lock_timeout
        self._sleep = sleep
        self._clock = clock

    def __repr__(self) -> str:
        return f"JSONFileCursorStore({str(self.path)!r})"

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Held by one ``listen()`` from its first load to its end (see ``_listen_lock``)."""
        target = self._target()
        self._refuse_not_regular()  # no lock file beside /dev/null
        return HeldLock(
            CursorLock(self.path, self._target),
            f"the cursor file {target}",
            timeout=self.lock_timeout,
            sleep=self._sleep,
            clock=self._clock,
        )

    async def load(self) -> str | None:
        return await asyncio.to_thread(self._load)

    async def save(self, cursor: str) -> None:
        await asyncio.to_thread(self._save, cursor)

    def _target(self) -> Path:
        """The file itself: a symlink's target (a save replaces the file, not the link)."""
        return Path(os.path.realpath(self.path))

    def _refuse_not_regular(self) -> bool:
        """True when the file exists; ``ConfigurationError`` when it is not a regular
        file (``/dev/null``: read, then replaced by ``os.replace`` when run as root; a
        FIFO: blocks in ``open``)."""
        try:
            mode = os.stat(self._target()).st_mode
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ConfigurationError(f"cannot read the cursor file {self.path}: {exc}") from None
        if not stat.S_ISREG(mode):
            raise ConfigurationError(
                f"the cursor file {self.path} is not a regular file (a directory, device, "
                "FIFO or socket); give listen() a file path, or store=MemoryCursorStore() to "
                "keep the position in memory only"
            )
        return True

    def _load(self) -> str | None:
        if not self._refuse_not_regular():
            return None
        try:
            text = self._target().read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigurationError(f"cannot read the cursor file {self.path}: {exc}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"the cursor file {self.path} is not UTF-8 text") from None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise ConfigurationError(
                f"the cursor file {self.path} is not JSON; fix or delete it (deleting it "
                f"makes listen() start over)"
            ) from None
        cursor = data.get("cursor") if isinstance(data, dict) else None
        if cursor is not None and not (isinstance(cursor, str) and cursor):
            raise ConfigurationError(f"the cursor file {self.path} has no valid 'cursor'")
        return cursor

    def _save(self, cursor: str) -> None:
        self._refuse_not_regular()
        try:
            self._write(cursor)
        except OSError as exc:  # a read-only volume, a full disk: the bot's, named
            raise ConfigurationError(
                f"cannot save the cursor file {self.path}: {exc.strerror or exc}"
            ) from None

    def _write(self, cursor: str) -> None:
        target = self._target()
        directory = target.parent
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "cursor": cursor,
            "savedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        prefix = f".{target.name[:100]}."  # the name's limit leaves no room for more
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


def _as_store(store: CursorStore | str | Path | None) -> CursorStore:
    if store is None:
        return MemoryCursorStore()
    if isinstance(store, (str, Path)):
        return JSONFileCursorStore(store)
    if not (callable(getattr(store, "load", None)) and callable(getattr(store, "save", None))):
        raise ConfigurationError(
            "store must be a CursorStore (async load() and save()), a path or None, got "
            f"{type(store).__name__}"
        )
    return store


def opened_store(
    store: CursorStore | str | Path, lock_timeout: float | None, clock: Clock
) -> CursorStore:
    """``listen()``'s ``store=``: a path becomes a ``JSONFileCursorStore`` whose lock
    waits at most ``lock_timeout`` on the client's ``clock``; a store is used as given
    (``lock_timeout`` is then refused: it would be ignored)."""
    if isinstance(store, (str, Path)):
        return JSONFileCursorStore(
            store, lock_timeout=lock_timeout, sleep=clock.sleep, clock=clock.monotonic
        )
    if lock_timeout is not None:
        raise ConfigurationError(
            "lock_timeout= is for the cursor file listen() opens from a path; give your "
            f"{type(store).__name__} its own (JSONFileCursorStore(path, lock_timeout=...))"
        )
    return store
