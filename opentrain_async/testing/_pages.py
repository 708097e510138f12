"""Pages of the fake server's messages and conversations, and the opaque cursors that
continue them.  ``Pages`` is a base of ``World`` (``_world``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ._models import ApiError, FakeConversation
from ._zod import issue

__all__ = ["Pages", "decode_cursor", "encode_cursor"]


def encode_cursor(payload: dict[str, Any]) -> str:
    """An opaque cursor string."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any] | None:
    """The cursor's payload, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


class Pages:
    """Message mode and list mode of GET /messages."""

    _conversations: dict[str, FakeConversation]

    def list_messages(
        self,
        uid: str,
        conversation_id: str,
        limit: int,
        cursor: dict[str, Any] | None,
        direction: str,
    ) -> dict[str, Any]:
        """Message mode: a page of one conversation's messages."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            raise ApiError(404, "Conversation not found")
        if uid not in conv.participants or not conv.readable:
            raise ApiError(
                403, "You are not a participant in this conversation", {"reason": "not_participant"}
            )
        messages = conv.messages
        total = len(messages)
        position = cursor.get("p") if cursor is not None else None
        if position is not None and (type(position) is not int or not 0 <= position <= total):
            raise ApiError(
                400,
                "Invalid query parameters",
                {"issues": [issue("custom", ["cursor"], "Invalid cursor")]},
            )
        next_position: int | None
        if direction == "older":
            end = total if position is None else position
            start = max(0, end - limit)
            page = messages[start:end][::-1]
            next_position = start if start > 0 else None
        else:
            start = 0 if position is None else position
            end = min(total, start + limit)
            page = messages[start:end]
            next_position = end if end < total else None
        next_cursor = (
            None
            if next_position is None
            else encode_cursor(
                {"m": "msg", "c": conversation_id, "d": direction, "p": next_position}
            )
        )
        return {
            "messages": [{**m, "isFromViewer": m["senderUserId"] == uid} for m in page],
            "nextCursor": next_cursor,
        }

    def list_conversations(
        self,
        uid: str,
        limit: int,
        cursor: dict[str, Any] | None,
        bucket_filter: str,
        unread_only: bool,
    ) -> dict[str, Any]:
        """List mode: the caller's conversations, most recently updated first."""
        after: tuple[int, str] | None = None
        if cursor is not None:
            seq, cid = cursor.get("s"), cursor.get("i")
            if type(seq) is not int or not isinstance(cid, str):
                raise ApiError(
                    400,
                    "Invalid query parameters",
                    {"issues": [issue("custom", ["cursor"], "Invalid cursor")]},
                )
            after = (seq, cid)
        rows: list[tuple[FakeConversation, int]] = []
        candidates = sorted(
            (
                c
                for c in self._conversations.values()
                if uid in c.participants
                and c.readable
                and (bucket_filter == "all" or c.bucket == bucket_filter)
                and (after is None or (c.seq, c.id) < after)
            ),
            key=lambda c: (c.seq, c.id),
            reverse=True,
        )
        more = False
        for conv in candidates:
            unread = conv.unread_for(uid)
            if unread_only and unread == 0:
                continue
            if len(rows) == limit:
                more = True
                break
            rows.append((conv, unread))
        items = [_conversation_row(conv, unread, uid) for conv, unread in rows]
        next_cursor = None
        if more and rows:
            tail = rows[-1][0]
            next_cursor = encode_cursor({"m": "list", "s": tail.seq, "i": tail.id})
        return {"conversations": items, "nextCursor": next_cursor}


def _conversation_row(conv: FakeConversation, unread: int, uid: str) -> dict[str, Any]:
    """One conversation of a list page, as ``uid`` sees it."""
    last = conv.messages[-1] if conv.messages else None
    return {
        "id": conv.id,
        "type": "DIRECT_MESSAGE",
        "bucket": conv.bucket,
        "jobId": conv.job_id,
        "proposalId": conv.proposal_id,
        "channelName": None,
        "updatedAt": conv.updated_at,
        "lastMessage": None
        if last is None
        else {
            "id": last["id"],
            "content": last["content"],
            "senderUserId": last["senderUserId"],
            "isFromViewer": last["senderUserId"] == uid,
            "createdAt": last["createdAt"],
        },
        "unreadCount": unread,
        "needsReplyCount": unread,
    }
