"""``listen()``: a bot's loop over new incoming messages, and where it keeps its place.

The /updates feed is the source of truth.  Each ``message.received`` event only says
where to read (``conversationId``, ``messageId``), so ``listen`` reads the conversation's
newest messages to find the message itself, skips the account's own messages
(``isFromViewer``; without it, its own replies) and yields the others in feed order.

Checkpoints are per message.  The saved position is the cursor of the page being worked
on plus the ids of the messages on that page the consumer has finished (see ``Listener``
for when a message counts as finished); once a whole page is finished, the next page's
cursor alone.  A bot stopped mid-page (SIGTERM, kill -9, ``break``) resumes after the last
message it finished: the one it was handling when it died comes back (at-least-once),
none before it.  ``OpenTrainClient.reply`` makes that one safe to handle again: it finds
its earlier answer by read-back instead of sending a second.

The position lives in a ``CursorStore`` (``_listen_position``) as one opaque string;
the default writes a small JSON file atomically (temp file, fsync, ``os.replace``) so a
crash while saving leaves the old position, never a torn file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Container
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from ._bulk_outcome import stops_engine
from ._errors import ConfigurationError, NotFoundError, PermissionDeniedError
from ._listen_lock import hold_store
from ._listen_position import (
    FROM_BEGINNING,
    CursorStore,
    JSONFileCursorStore,
    ListenPosition,
    MemoryCursorStore,
    ReplyLog,
    _as_store,
)
from ._listen_position import POSITION_PREFIX as POSITION_PREFIX  # for tests
from ._listener import Listener, _Finished
from ._models import Message
from ._pagination import AsyncPaginator
from ._read_models import Event, EventPage, MessagePage
from ._seen import RecentSet
from ._validation import validate_choice, validate_limit, validate_number

__all__ = [
    "CursorStore",
    "JSONFileCursorStore",
    "ListenPosition",
    "ListenStart",
    "Listener",
    "MemoryCursorStore",
    "ReplyLog",
    "listen_messages",
]

logger = logging.getLogger("opentrain_async")

ListenStart = Literal["latest", "beginning"]

_LOOKUP_PAGE_SIZE = 100
LOOKUP_BUDGET = 60.0
"""Seconds one conversation lookup may take before the page is retried later."""
EVENT_SKEW = timedelta(minutes=5)
"""How much earlier than its ``message.received`` event a message may be stamped."""
LIST_LAG = 10.0
"""Seconds a message its event announced may stay missing from its conversation's list,
while nothing newer than the event is listed there, before it is taken as gone: the
list may lag the feed (the docs promise nothing either way); a deleted message in a
quiet conversation holds the feed up this long once per run."""
_SEEN_CAPACITY = 50_000
_ALL_LISTED = datetime.max.replace(tzinfo=timezone.utc)  # a lookup with nothing to wait for
_LAG = "lag"  # ``_resolve_page``: retry the page because the list may lag the feed


class _Reader(Protocol):
    """What ``listen()`` needs: the updates feed and conversations' messages, page by page."""

    async def get_updates(self, *, cursor: str | None = ..., limit: int = ...) -> EventPage: ...

    def iter_updates(
        self, *, cursor: str | None = ..., limit: int = ...
    ) -> AsyncPaginator[EventPage, Event]: ...

    def iter_messages(
        self, conversation_id: str, *, limit: int = ...
    ) -> AsyncPaginator[MessagePage, Message]: ...


async def _find_messages(
    reader: _Reader,
    conversation_id: str,
    wanted: set[str],
    not_before: datetime | None,
    *,
    budget: float = LOOKUP_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, Message], bool, datetime | None]:
    """Read a conversation back from its newest message until every wanted id is found.

    The bound is time, not pages: reading stops once the messages are older than
    ``not_before`` (the events' time, less an allowance) or the conversation has no
    more, so a message under any number of newer ones is found.  Returns what was
    found, whether the search was complete (False: the server echoed its cursor or
    ``budget`` seconds ran out, so a missing message may still be there) and the newest
    message's time (None: none listed).
    """
    found: dict[str, Message] = {}
    newest: datetime | None = None
    deadline = clock() + budget
    walk = reader.iter_messages(conversation_id, limit=_LOOKUP_PAGE_SIZE)
    async with contextlib.aclosing(walk.pages()) as newest_first:
        async for page in newest_first:
            for message in page.messages:
                if message.id in wanted:
                    found[message.id] = message
            times = [m.created_at for m in page.messages]
            if times and (newest is None or max(times) > newest):
                newest = max(times)
            if len(found) == len(wanted):
                return found, True, newest
            if not_before is not None and times and min(times) < not_before:
                return found, True, newest
            if clock() >= deadline:
                return found, False, newest
    # The walk ended: the conversation has no more, unless a cursor came back.
    return found, not walk.repeated_cursor, newest


async def _lookup(
    reader: _Reader,
    conversation_id: str,
    wanted: set[str],
    not_before: datetime | None,
    clock: Callable[[], float],
) -> tuple[dict[str, Message], bool, datetime | None]:
    """``_find_messages``, except that a conversation this account cannot read (a 404,
    or a 403 about that conversation such as ``not_participant``) has nothing to find.

    Raised out of ``listen()``, such an answer would stop the bot before the position
    moves, so every restart would meet it again and no later message, in any
    conversation, would ever be handled.  Its messages are skipped with a warning
    instead, like a message that is gone.  A 403 about the token or account (missing
    scope...) is every lookup's answer, so it still raises.
    """
    try:
        return await _find_messages(reader, conversation_id, wanted, not_before, clock=clock)
    except (NotFoundError, PermissionDeniedError) as exc:
        if stops_engine(exc):
            raise
        logger.warning(
            "conversation %s cannot be read (%s %s); its %d new message(s) are skipped",
            conversation_id,
            exc.status,
            exc.reason or exc.code,
            len(wanted),
        )
        return {}, True, _ALL_LISTED


async def _fast_forward(reader: _Reader, limit: int) -> str | None:
    """The cursor after the newest event now in the feed (history is skipped)."""
    cursor: str | None = None
    async with contextlib.aclosing(reader.iter_updates(limit=limit).pages()) as pages:
        async for page in pages:
            cursor = page.next_cursor or cursor
    return cursor


def _wanted(
    page: EventPage, seen: RecentSet[str]
) -> tuple[list[tuple[Event, str, str]], dict[str, tuple[set[str], datetime | None]]]:
    """The page's ``message.received`` events not seen yet, as (event, conversation,
    message), and per conversation its message ids and the time they cannot be older
    than."""
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
    lookups: dict[str, tuple[set[str], datetime | None]] = {}
    for event, conversation_id, message_id in wanted:
        at = None if event.created_at is None else event.created_at - EVENT_SKEW
        ids, earlier = lookups.get(conversation_id, (set(), at))
        ids.add(message_id)
        lookups[conversation_id] = ids, None if at is None or earlier is None else min(at, earlier)
    return wanted, lookups


def _not_listed_yet(
    event: Event, newest: datetime | None, missed: dict[str, float], message_id: str, now: float
) -> bool:
    """A message missing from its conversation read back to the end may not be listed
    yet (a list that lags the feed): while nothing newer than its event is listed, for
    ``LIST_LAG`` seconds from its first miss (``missed``, this run's)."""
    first = missed.setdefault(message_id, now)
    caught_up = newest is not None and event.created_at is not None and newest >= event.created_at
    if caught_up or now - first >= LIST_LAG:
        del missed[message_id]
        return False
    return True


async def _resolve_page(
    reader: _Reader,
    page: EventPage,
    seen: RecentSet[str],
    missed: dict[str, float],
    clock: Callable[[], float],
    replies: Container[str],
) -> tuple[list[Message], str | None]:
    """The page's new incoming messages in feed order (each marked seen), and why the
    page must be retried after them (None: it need not): a message that may exist was
    not found, because its conversation could not be read back far enough
    ("incomplete") or because its list may lag the feed (``_LAG``).  One of our
    ``replies`` without ``isFromViewer`` is ours (yielded, an echo bot looped)."""
    wanted, lookups = _wanted(page, seen)
    found: dict[str, Message] = {}
    incomplete: set[str] = set()
    newest: dict[str, datetime | None] = {}
    for conversation_id, (ids, bound) in lookups.items():
        messages, complete, newest[conversation_id] = await _lookup(
            reader, conversation_id, ids, bound, clock
        )
        found.update(messages)
        if not complete:
            incomplete.add(conversation_id)
    out: list[Message] = []
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
            return out, "incomplete"
        if message is None and _not_listed_yet(
            event, newest[conversation_id], missed, message_id, clock()
        ):
            logger.info("message %s of event %s not listed yet; retrying", message_id, event.id)
            return out, _LAG
        missed.pop(message_id, None)
        seen.add(message_id)
        if message is None:
            logger.warning(
                "message %s of event %s not found in conversation %s; skipped",
                message_id,
                event.id,
                conversation_id,
            )
            continue
        if message.is_from_viewer is False or (
            message.is_from_viewer is None and message.id not in replies
        ):
            out.append(message)
    return out, None


def listen_messages(
    reader: _Reader,
    *,
    store: CursorStore | str | Path | None = None,
    start: ListenStart = "latest",
    limit: int = 100,
    idle_backoff: float = 1.0,
    max_idle_backoff: float = 30.0,
    backoff_factor: float = 2.0,
    until_idle: bool = False,
    replies: ReplyLog | None = None,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Listener:
    """The engine of ``OpenTrainClient.listen()`` (documented there); ``replies`` is
    the client's ``ReplyLog``; ``sleep`` and ``clock`` are the client's time seam.
    Nothing runs (parameters are checked) until the first message is asked for."""
    engine = _listen(
        reader,
        store,
        start=start,
        limit=limit,
        backoff=(idle_backoff, max_idle_backoff, backoff_factor),
        until_idle=until_idle,
        replies=ReplyLog() if replies is None else replies,
        pause=sleep or asyncio.sleep,
        clock=clock,
    )
    return Listener(engine)


def _loaded(saved: object, store: object) -> str | None:
    """What a ``CursorStore.load()`` returned, as the position string (or None).

    Bytes (a Redis client without ``decode_responses``) are read as UTF-8; anything
    else that is not a non-blank string is a ``ConfigurationError`` naming the store,
    never a ``TypeError`` from deep inside ``listen()``.
    """
    if isinstance(saved, (bytes, bytearray)):
        with contextlib.suppress(UnicodeDecodeError):  # not UTF-8: reported below
            saved = bytes(saved).decode("utf-8")
    if saved is None or (isinstance(saved, str) and saved.strip()):
        return saved
    what = repr(saved) if isinstance(saved, str) else type(saved).__name__
    raise ConfigurationError(
        f"{type(store).__name__}.load() returned {what}: it must return the string "
        "save() was given, or None when nothing is saved yet"
    )


async def _starting_position(
    reader: _Reader, cursor_store: CursorStore, start: ListenStart, limit: int
) -> ListenPosition:
    """The saved position; on a first run with ``start="latest"``, the feed's head,
    saved at once."""
    saved = _loaded(await cursor_store.load(), cursor_store)
    if saved is None and start == "latest":
        head = await _fast_forward(reader, limit)
        # An empty feed has no cursor to save: remember "from the beginning" instead,
        # or a restart would fast-forward past what arrived while the bot was down.
        saved = FROM_BEGINNING if head is None else head
        await cursor_store.save(saved)
    return ListenPosition(None) if saved is None else ListenPosition.decode(saved)


async def _resume(
    reader: _Reader, cursor_store: CursorStore, start: ListenStart, limit: int, replies: ReplyLog
) -> tuple[str | None, list[str], RecentSet[str]]:
    """Where to go on from: the page's cursor, the messages finished on it (also marked
    seen, so a page read again skips them); the saved replies go back into ``replies``."""
    position = await _starting_position(reader, cursor_store, start, limit)
    replies.restore(position.replies)
    seen: RecentSet[str] = RecentSet(_SEEN_CAPACITY)
    for message_id in position.handled:
        seen.add(message_id)
    return position.cursor, list(position.handled), seen


class _Backoff:
    """``listen()``'s idle wait: from ``initial``, times ``factor`` after each idle
    poll, at most ``ceiling``; back to ``initial`` once something arrives."""

    def __init__(
        self, backoff: tuple[float, float, float], sleep: Callable[[float], Awaitable[Any]]
    ) -> None:
        self.initial = validate_number(backoff[0], "idle_backoff", minimum=0)
        self.ceiling = validate_number(backoff[1], "max_idle_backoff", minimum=self.initial)
        self.factor = validate_number(backoff[2], "backoff_factor", minimum=1)
        self.sleep = sleep
        self.wait = self.initial

    def reset(self) -> None:
        self.wait = self.initial

    async def pause(self, *, grow: bool) -> None:
        await self.sleep(self.wait)
        if grow:
            self.wait = min(self.wait * self.factor, self.ceiling)


async def _listen(
    reader: _Reader,
    store: CursorStore | str | Path | None,
    *,
    start: ListenStart,
    limit: int,
    backoff: tuple[float, float, float],
    until_idle: bool,
    replies: ReplyLog,
    pause: Callable[[float], Awaitable[Any]],
    clock: Callable[[], float],
) -> AsyncGenerator[Message, None]:
    """Yield new incoming messages; save the position after each finished one."""
    validate_limit(limit, 200)
    validate_choice(start, "start", ("latest", "beginning"))
    idle = _Backoff(backoff, pause)
    cursor_store = _as_store(store)
    async with hold_store(cursor_store):  # one listener per position (_listen_lock)
        cursor, handled, seen = await _resume(reader, cursor_store, start, limit, replies)
        missed: dict[str, float] = {}  # messages not listed yet: since when (``LIST_LAG``)

        async def save(at: str | None, done: list[str]) -> None:
            position = ListenPosition(at, tuple(done), replies.pairs())
            await cursor_store.save(position.encode())

        while True:
            page = await reader.get_updates(cursor=cursor, limit=limit)
            messages, retry = await _resolve_page(reader, page, seen, missed, clock, replies)
            next_cursor = page.next_cursor or cursor
            progressed = next_cursor != cursor
            page_done = progressed and not retry
            for index, message in enumerate(messages):
                try:
                    yield message
                    finished_cleanly = False
                except _Finished:
                    finished_cleanly = True
                # The consumer is back: this message is finished.
                handled.append(message.id)
                if page_done and index == len(messages) - 1:
                    cursor, handled = next_cursor, []  # the whole page is finished
                await save(cursor, handled)
                if finished_cleanly:
                    return
            if page_done and cursor != next_cursor:
                cursor, handled = next_cursor, []
                await save(cursor, handled)  # a page with nothing for the consumer
            if retry:
                if until_idle and retry != _LAG:
                    return  # the position stays before that message: the next run retries it
                await idle.pause(grow=True)
                continue
            fresh = bool(page.events) and progressed
            if fresh:
                idle.reset()
                if page.has_more:
                    continue  # more is waiting: fetch it now
            if until_idle:
                return
            await idle.pause(grow=not fresh)
