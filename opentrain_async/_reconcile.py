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
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import cattrs

from ._errors import DeliveryUnknownError, OpenTrainError
from ._models import Message, structure

if TYPE_CHECKING:
    from ._client import OpenTrainClient

__all__ = ["ClaimedIds", "find_own_message", "messages_from_page"]

PAGE_LIMIT = 100
MAX_PAGES = 10


class ClaimedIds:
    """A bounded set of message ids this client already attributed to a send."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def add(self, message_id: str) -> None:
        """Remember ``message_id`` (evicting the oldest beyond capacity)."""
        ids = self._ids
        ids[message_id] = None
        if len(ids) > self._capacity:
            ids.popitem(last=False)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._ids


def messages_from_page(payload: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The raw message objects and next cursor of a GET /messages page.

    The docs leave the array's key unknown: ``messages`` is the natural reading, but
    ``items`` and ``data`` (or a bare list) are accepted too.
    """
    if isinstance(payload, list):
        return [m for m in payload if isinstance(m, dict)], None
    if not isinstance(payload, dict):
        return [], None
    for key in ("messages", "items", "data"):
        value = payload.get(key)
        if isinstance(value, list):
            cursor = payload.get("nextCursor")
            return [m for m in value if isinstance(m, dict)], (
                cursor if isinstance(cursor, str) and cursor else None
            )
    return [], None


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

    Raises ``DeliveryUnknownError`` (chained to the read error) when the conversation
    cannot be read back, e.g. without the ``messages:read`` scope.
    """
    since_dt = datetime.fromtimestamp(since, tz=timezone.utc)
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params = {"conversationId": conversation_id, "limit": str(PAGE_LIMIT)}
        if cursor:
            params["cursor"] = cursor
        try:
            _, payload = await client.request("GET", "/messages", params=params)
        except OpenTrainError as exc:
            raise DeliveryUnknownError(
                f"sending to {conversation_id}: the outcome is unknown and the conversation "
                f"could not be read back to check ({exc}); not resending",
                cause=cause.cause,
                conversation_id=conversation_id,
                started_at=cause.started_at,
            ) from exc
        raw_messages, next_cursor = messages_from_page(payload)
        oldest_seen: datetime | None = None
        for raw in raw_messages:
            try:
                message = structure(raw, Message)
            except (cattrs.BaseValidationError, TypeError, ValueError):
                continue
            if oldest_seen is None or message.created_at < oldest_seen:
                oldest_seen = message.created_at
            if (
                message.is_from_viewer
                and message.content == content
                and message.created_at >= since_dt
                and message.id not in claimed
            ):
                claimed.add(message.id)
                return message
        if next_cursor is None or next_cursor == cursor or not raw_messages:
            return None
        if oldest_seen is not None and oldest_seen < since_dt:
            return None
        cursor = next_cursor
    return None
