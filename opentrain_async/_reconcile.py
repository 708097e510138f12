"""Read-back reconciliation: did a send whose outcome is unknown reach the conversation?

POST /messages has no idempotency key, so after a timeout, a dropped connection or a 5xx
the only way to avoid both loss and duplicates is to look: read the conversation back
(newest first) and search for our own message: from the viewer, same content, created
after the first attempt began (less an allowance for clock skew), and not already
claimed by another send of this client.  Found: that is the outcome.  Not found: the
message was not delivered and may be resent.  Unreadable: the outcome stays unknown.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ._errors import DeliveryUnknownError, OpenTrainError
from ._models import Message

if TYPE_CHECKING:
    from ._client import OpenTrainClient

__all__ = ["ClaimedIds", "find_own_message"]

PAGE_LIMIT = 100
MAX_PAGES = 10


class ClaimedIds:
    """A bounded set of message ids this client already attributed to a send."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity
        self._elsewhere: list[Container[str]] = []

    def include(self, ids: Container[str]) -> None:
        """Also treat every id in ``ids`` (a live collection, not copied) as claimed."""
        self._elsewhere.append(ids)

    def add(self, message_id: str) -> None:
        """Remember ``message_id`` (evicting the oldest beyond capacity)."""
        ids = self._ids
        ids[message_id] = None
        if len(ids) > self._capacity:
            ids.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        if message_id in self._ids:
            return True
        return isinstance(message_id, str) and any(message_id in c for c in self._elsewhere)


async def find_own_message(
    client: OpenTrainClient,
    conversation_id: str,
    content: str,
    *,
    since: float,
    claimed: ClaimedIds,
    cause: DeliveryUnknownError,
) -> Message | None:
    """Search the conversation for our unclaimed message created at or after ``since``.

    Pages back from the newest message (``read_messages``, the same reader bots use)
    until messages are older than ``since``, for at most ``MAX_PAGES`` pages.  Raises
    ``DeliveryUnknownError`` (chained to the send failure, else to the read error) when
    the conversation cannot be read back, e.g. without the ``messages:read`` scope, or
    answers malformed pages.
    """
    since_dt = datetime.fromtimestamp(since, tz=timezone.utc)
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            page = await client.read_messages(conversation_id, limit=PAGE_LIMIT, cursor=cursor)
        except OpenTrainError as exc:
            raise DeliveryUnknownError(
                f"sending to {conversation_id}: the outcome is unknown and the conversation "
                f"could not be read back to check ({exc}); not resending",
                cause=cause.__cause__,
                conversation_id=conversation_id,
                started_at=cause.started_at,
            ) from (cause.__cause__ or exc)
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
        if page.next_cursor in (None, cursor) or not older or min(older) < since_dt:
            return None
        cursor = page.next_cursor
    return None
