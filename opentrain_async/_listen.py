"""``listen()``: a bot's loop over new incoming messages, and where it keeps its cursor.

The /updates feed is the source of truth.  Each ``message.received`` event only says
where to read (``conversationId``, ``messageId``), so ``listen`` reads the conversation's
newest messages to find the message itself, skips the account's own messages
(``isFromViewer``) and yields the others in feed order.

Delivery is at-least-once: the cursor is saved only after every message of a page has
been yielded, so a crash mid-page re-delivers that page on restart.  Within one run,
message ids are deduped.  The cursor lives in a ``CursorStore``; the default writes a
small JSON file atomically (temp file, fsync, ``os.replace``) so a crash while saving
leaves the old cursor, never a torn file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from ._errors import ConfigurationError
from ._models import Message
from ._pagination import AsyncPaginator
from ._read_models import Event, EventPage, MessagePage
from ._seen import RecentSet
from ._validation import validate_choice, validate_limit, validate_number

__all__ = [
    "CursorStore",
    "JSONFileCursorStore",
    "ListenStart",
    "MemoryCursorStore",
    "listen_messages",
]

logger = logging.getLogger("opentrain_async")

ListenStart = Literal["latest", "beginning"]

_LOOKUP_PAGE_SIZE = 100
LOOKUP_BUDGET = 60.0
"""Seconds one conversation lookup may take before the page is retried later."""
EVENT_SKEW = timedelta(minutes=5)
"""How much earlier than its ``message.received`` event a message may be stamped."""
FROM_BEGINNING = "@beginning"
"""Saved instead of a cursor when the feed was empty at the first start: the next
start reads from the beginning, so nothing that arrives meanwhile is skipped."""
_SEEN_CAPACITY = 50_000


class CursorStore(Protocol):
    """Where ``listen()`` keeps the /updates cursor between runs."""

    async def load(self) -> str | None:
        """The saved cursor, or None when nothing was saved yet."""

    async def save(self, cursor: str) -> None:
        """Persist ``cursor`` durably (it replaces the previous one)."""


class MemoryCursorStore:
    """A cursor kept in memory: survives ``listen()`` restarts within one process only."""

    def __init__(self, cursor: str | None = None) -> None:
        self.cursor = cursor
        self.saves = 0

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
    silently starting over (which would replay or skip messages).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JSONFileCursorStore({str(self.path)!r})"

    async def load(self) -> str | None:
        return await asyncio.to_thread(self._load)

    async def save(self, cursor: str) -> None:
        await asyncio.to_thread(self._save, cursor)

    def _load(self) -> str | None:
        try:
            text = self.path.read_text(encoding="utf-8")
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
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "cursor": cursor,
            "savedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


class _Reader(Protocol):
    """What ``listen()`` needs: the updates feed and conversations' messages, page by page."""

    async def get_updates(self, *, cursor: str | None = ..., limit: int = ...) -> EventPage: ...

    def iter_updates(
        self, *, cursor: str | None = ..., limit: int = ...
    ) -> AsyncPaginator[EventPage, Event]: ...

    def iter_messages(
        self, conversation_id: str, *, limit: int = ...
    ) -> AsyncPaginator[MessagePage, Message]: ...


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


async def _find_messages(
    reader: _Reader,
    conversation_id: str,
    wanted: set[str],
    not_before: datetime | None,
    *,
    budget: float = LOOKUP_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Message], bool]:
    """Read a conversation back from its newest message until every wanted id is found.

    The bound is time, not pages: reading stops once the messages are older than
    ``not_before`` (the events' time, less an allowance) or the conversation has no
    more, so a message under any number of newer ones is found.  Returns what was
    found and whether the search was complete (False: the server echoed its cursor or
    ``budget`` seconds ran out, so a missing message may still be there).
    """
    found: dict[str, Message] = {}
    deadline = clock() + budget
    walk = reader.iter_messages(conversation_id, limit=_LOOKUP_PAGE_SIZE)
    async with contextlib.aclosing(walk.pages()) as newest_first:
        async for page in newest_first:
            for message in page.messages:
                if message.id in wanted:
                    found[message.id] = message
            if len(found) == len(wanted):
                return found, True
            times = [m.created_at for m in page.messages]
            if not_before is not None and times and min(times) < not_before:
                return found, True
            if clock() >= deadline:
                return found, False
    # The walk ended: the conversation has no more, unless a cursor came back.
    return found, not walk.repeated_cursor


async def _fast_forward(reader: _Reader, limit: int) -> str | None:
    """The cursor after the newest event now in the feed (history is skipped)."""
    cursor: str | None = None
    async with contextlib.aclosing(reader.iter_updates(limit=limit).pages()) as pages:
        async for page in pages:
            cursor = page.next_cursor or cursor
    return cursor


async def listen_messages(
    reader: _Reader,
    *,
    store: CursorStore | str | Path | None = None,
    start: ListenStart = "latest",
    limit: int = 100,
    idle_backoff: float = 1.0,
    max_idle_backoff: float = 30.0,
    backoff_factor: float = 2.0,
    until_idle: bool = False,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[Message]:
    """The engine of ``OpenTrainClient.listen()`` (documented there); ``sleep`` and
    ``clock`` are the client's time seam."""
    validate_limit(limit, 200)
    validate_choice(start, "start", ("latest", "beginning"))
    initial = validate_number(idle_backoff, "idle_backoff", minimum=0)
    ceiling = validate_number(max_idle_backoff, "max_idle_backoff", minimum=initial)
    factor = validate_number(backoff_factor, "backoff_factor", minimum=1)
    pause = sleep or asyncio.sleep
    cursor_store = _as_store(store)

    cursor = await cursor_store.load()
    if cursor is None and start == "latest":
        cursor = await _fast_forward(reader, limit)
        # An empty feed has no cursor to save: remember "from the beginning" instead,
        # or a restart would fast-forward past what arrived while the bot was down.
        await cursor_store.save(FROM_BEGINNING if cursor is None else cursor)
    if cursor == FROM_BEGINNING:
        cursor = None
    seen: RecentSet[str] = RecentSet(_SEEN_CAPACITY)
    wait = initial
    while True:
        page = await reader.get_updates(cursor=cursor, limit=limit)
        wanted: list[tuple[Event, str, str]] = []
        for event in page.events:
            if event.type != "message.received":
                continue
            conversation_id, message_id = event.conversation_id, event.message_id
            if conversation_id is None or message_id is None:
                logger.warning("message.received event %s without ids; skipped", event.id)
                continue
            if message_id not in seen:
                wanted.append((event, conversation_id, message_id))
        by_conversation: dict[str, set[str]] = {}
        not_before: dict[str, datetime | None] = {}
        for event, conversation_id, message_id in wanted:
            by_conversation.setdefault(conversation_id, set()).add(message_id)
            at = None if event.created_at is None else event.created_at - EVENT_SKEW
            earlier = not_before.get(conversation_id, at)
            bound = None if at is None or earlier is None else min(at, earlier)
            not_before[conversation_id] = bound
        found: dict[str, Message] = {}
        incomplete: set[str] = set()
        for conversation_id, ids in by_conversation.items():
            messages, complete = await _find_messages(
                reader, conversation_id, ids, not_before[conversation_id], clock=clock
            )
            found.update(messages)
            if not complete:
                incomplete.add(conversation_id)
        retry = False
        for event, conversation_id, message_id in wanted:
            if message_id in seen:
                continue  # the same message announced twice in one page
            message = found.get(message_id)
            if message is None and conversation_id in incomplete:
                # Not read back far enough to know: retry this page later rather than
                # move the cursor past a message that may be there.
                logger.warning(
                    "message %s of event %s: conversation %s could not be read back far "
                    "enough; retrying the page",
                    message_id,
                    event.id,
                    conversation_id,
                )
                retry = True
                break
            seen.add(message_id)
            if message is None:
                logger.warning(
                    "message %s of event %s not found in conversation %s; skipped",
                    message_id,
                    event.id,
                    conversation_id,
                )
                continue
            if message.is_from_viewer:
                continue
            yield message
        if retry:
            if until_idle:
                return  # the cursor stays before that message: the next run retries it
            await pause(wait)
            wait = min(wait * factor, ceiling)
            continue
        next_cursor = page.next_cursor or cursor
        progressed = next_cursor != cursor
        if progressed and next_cursor is not None:
            await cursor_store.save(next_cursor)  # only now: every message was yielded
            cursor = next_cursor
        if page.events and page.has_more and progressed:
            wait = initial
            continue  # more is waiting: fetch it now
        if until_idle:
            return
        if page.events and progressed:
            wait = initial
        await pause(wait)
        if not (page.events and progressed):
            wait = min(wait * factor, ceiling)
