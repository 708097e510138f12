"""Read-back reconciliation: did a send whose outcome is unknown reach the conversation?

POST /messages has no idempotency key, so after a timeout, a dropped connection or a 5xx
the only way to avoid both loss and duplicates is to look: read the conversation back
(newest first) and search for our own message: from the viewer, same content, created
after the first attempt began (less an allowance for clock skew), and not already
claimed by another send of this client.  Found: that is the outcome.  Not found, after
reading back to before the first attempt: the message was not delivered and may be
resent.  Unreadable, or not read back that far: the outcome stays unknown.  The bound
is time (the messages' own timestamps, and a budget in seconds), never a page count,
so a busy conversation cannot make "not read" look like "not delivered".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Container
from datetime import datetime, timezone
from typing import Protocol

from ._errors import DeliveryUnknownError, OpenTrainError
from ._models import Message
from ._pagination import AsyncPaginator
from ._read_models import MessagePage
from ._seen import RecentSet

__all__ = ["ClaimedIds", "MessageReader", "find_own_message"]

PAGE_LIMIT = 100
READ_BACK_BUDGET = 120.0
"""Seconds one read-back may take before its outcome is reported unknown."""


class MessageReader(Protocol):
    """What read-back needs: a conversation's messages, newest first, page by page."""

    def iter_messages(
        self, conversation_id: str, *, limit: int = ...
    ) -> AsyncPaginator[MessagePage, Message]: ...


class ClaimedIds:
    """The message ids this client already attributed to a send (the most recent
    ``capacity`` of them), and live collections of ids claimed elsewhere."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: RecentSet[str] = RecentSet(capacity)
        self._elsewhere: list[Container[str]] = []

    def include(self, ids: Container[str]) -> None:
        """Also treat every id in ``ids`` (a live collection, not copied) as claimed."""
        self._elsewhere.append(ids)

    def add(self, message_id: str) -> None:
        """Remember ``message_id`` (the least recent is forgotten beyond capacity)."""
        self._ids.add(message_id)

    def __contains__(self, message_id: object) -> bool:
        if message_id in self._ids:
            return True
        return isinstance(message_id, str) and any(message_id in c for c in self._elsewhere)


async def find_own_message(
    reader: MessageReader,
    conversation_id: str,
    content: str,
    *,
    since: float,
    claimed: ClaimedIds,
    cause: DeliveryUnknownError,
    budget: float = READ_BACK_BUDGET,
    clock: Callable[[], float] = time.monotonic,
) -> Message | None:
    """Search the conversation for our unclaimed message created at or after ``since``.

    Walks back from the newest message (``iter_messages``, the same reader bots use)
    until the messages are older than ``since`` or the conversation has no more: only
    then is "not found" an answer (None), however many newer messages there are.
    Anything short of that is ``DeliveryUnknownError`` (chained to what went wrong),
    never "not delivered": the conversation cannot be read (no ``messages:read``),
    a page is malformed, the server hands back a cursor it already gave, or reading
    back takes longer than ``budget`` seconds.
    """
    since_dt = datetime.fromtimestamp(since, tz=timezone.utc)
    deadline = clock() + budget
    walk = reader.iter_messages(conversation_id, limit=PAGE_LIMIT)
    pages = 0
    async with contextlib.aclosing(walk.pages()) as newest_first:
        while True:
            try:
                page = await anext(newest_first, None)
            except OpenTrainError as exc:
                raise _unknown(
                    conversation_id, cause, f"could not be read back to check ({exc})"
                ) from exc
            if page is None:
                break
            pages += 1
            for message in page.messages:  # the order inside a page is not documented
                if (
                    message.is_from_viewer
                    and message.content == content
                    and message.created_at >= since_dt
                    and message.id not in claimed
                ):
                    claimed.add(message.id)
                    return message
            older = [m.created_at for m in page.messages]
            if older and min(older) < since_dt:
                return None  # read back to before the first attempt: it is not there
            if clock() >= deadline:
                raise _unknown(
                    conversation_id,
                    cause,
                    f"was not read back far enough within {budget:g} s ({pages:,} pages of "
                    "newer messages)",
                )
    if walk.repeated_cursor:
        raise _unknown(
            conversation_id,
            cause,
            f"could not be read back to check (the server returned the same cursor again, "
            f"or one it had already given, after {pages:,} pages)",
        )
    return None  # the whole conversation was read: it is not there


def _unknown(conversation_id: str, cause: DeliveryUnknownError, why: str) -> DeliveryUnknownError:
    return DeliveryUnknownError(
        f"sending to {conversation_id}: the outcome is unknown and the conversation {why}; "
        "not resending",
        cause=cause.__cause__,
        conversation_id=conversation_id,
        started_at=cause.started_at,
    )
