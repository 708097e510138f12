"""The fake server's /updates feeds: one per account, events appended as the world
changes (a message received) or by a test (``add_event``), read a page at a time
under the token's read scopes.  ``Feed`` is a base of ``World`` (``_world``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from ._models import ApiError, FakeAccount, FakeConversation

__all__ = ["FEED_RETENTION", "Feed"]

FEED_RETENTION: Final = 10_000
"""Events kept per account feed (oldest dropped): a long benchmark's feeds stay bounded."""
_FEED_SCOPES: Final = frozenset({"proposals:read", "messages:read", "payments:read"})


def _iso(dt: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z (naive datetimes are taken as UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="milliseconds") + "Z"


def _event_scope(event_type: str) -> str | None:
    """The read scope an event type needs in the feed (None: unknown type, always shown)."""
    prefix = event_type.split(".", 1)[0]
    if prefix == "message":
        return "messages:read"
    if prefix == "proposal":
        return "proposals:read"
    if prefix in ("contract", "milestone", "payment", "approval"):
        return "payments:read"
    return None


class Feed:
    """Each account's event feed (see the module)."""

    _accounts: dict[str, FakeAccount]
    _events: dict[str, deque[dict[str, Any]]]
    _event_counter: int
    _now: Callable[[], datetime]
    _lookup: Callable[[str | None], FakeAccount]

    def add_event(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        resource_id: str | None = None,
        job_id: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Append an event (any type, known or not) to one account's /updates feed.

        The feed is the default token's unless `token` names another. Returns the record.
        """
        account = self._lookup(token)
        return self._append_event(account.user_id, type, dict(data or {}), resource_id, job_id)

    def events(self, token: str | None = None) -> list[dict[str, Any]]:
        """The /updates feed of `token` (default token when None), oldest first."""
        account = self._lookup(token)
        return list(self._events.get(account.user_id, ()))

    def _append_event(
        self,
        user_id: str,
        type: str,
        data: dict[str, Any],
        resource_id: str | None,
        job_id: str | None,
    ) -> dict[str, Any]:
        self._event_counter += 1
        event = {
            "id": str(self._event_counter),
            "type": type,
            "apiVersion": "v1",
            "createdAt": _iso(self._now()),
            "resourceId": resource_id,
            "jobId": job_id,
            "data": data,
        }
        feed = self._events.get(user_id)
        if feed is None:
            feed = self._events[user_id] = deque(maxlen=FEED_RETENTION)
        feed.append(event)
        return event

    def _announce_to_accounts(self, conv: FakeConversation, message: dict[str, Any]) -> None:
        """message.received for the other participants that have a token (sent via the API).

        Participants without an account have no feed anyone could read, so they get no
        events: a benchmark's million sends cost no memory here.
        """
        holders = {account.user_id for account in self._accounts.values()}
        self._announce_message(conv, message, holders & conv.participants)

    def _announce_message(
        self, conv: FakeConversation, message: dict[str, Any], to: Iterable[str] | None = None
    ) -> None:
        """message.received for the participants (or those `to`) but the sender."""
        for user_id in conv.participants if to is None else to:
            if user_id != message["senderUserId"]:
                self._append_event(
                    user_id,
                    "message.received",
                    {"conversationId": conv.id, "messageId": message["id"]},
                    message["id"],
                    conv.job_id,
                )

    def updates(self, account: FakeAccount, cursor: str | None, limit: int) -> dict[str, Any]:
        """GET /updates after validation: the account's feed from `cursor`, oldest first."""
        readable = {s.replace(":write", ":read") for s in account.scopes}
        if not readable & _FEED_SCOPES:
            raise ApiError(
                403,
                "Token needs one of proposals:read, messages:read, payments:read",
                {"reason": "insufficient_scope"},
            )
        start = 0 if cursor is None else int(cursor)
        visible = [
            e
            for e in self._events.get(account.user_id, ())
            if int(e["id"]) >= start and _event_scope(e["type"]) in readable | {None}
        ]
        page = visible[:limit]
        has_more = len(visible) > limit
        next_cursor = str(int(page[-1]["id"]) + 1) if page else cursor
        return {"events": page, "nextCursor": next_cursor, "hasMore": has_more}
