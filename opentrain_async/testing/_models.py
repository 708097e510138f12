"""Plain data held by the fake server: accounts, conversations, faults, request records.

These are deliberately simple mutable records so tests can inspect them, and tweak them
mid-test (e.g. ``server.account(token).claimed = False``), without going through HTTP.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = [
    "DEFAULT_SCOPES",
    "ApiError",
    "FakeAccount",
    "FakeConversation",
    "Fault",
    "RecordedRequest",
]

DEFAULT_SCOPES: tuple[str, ...] = (
    "messages:read",
    "messages:write",
    "proposals:read",
    "proposals:write",
)


class Fault(str, enum.Enum):
    """Transport-level failures injected around the commit point of POST /messages."""

    RESET_AFTER_COMMIT = "reset_after_commit"
    """Message stored, then the connection is dropped with no response."""
    BAD_GATEWAY_AFTER_COMMIT = "bad_gateway_after_commit"
    """Message stored, then an HTML 502 answer (as a proxy would give)."""
    TIMEOUT_AFTER_COMMIT = "timeout_after_commit"
    """Message stored, then the normal answer is delayed by the fault's ``delay``."""
    RESET_BEFORE_COMMIT = "reset_before_commit"
    """Connection dropped, nothing stored."""
    BAD_GATEWAY_BEFORE_COMMIT = "bad_gateway_before_commit"
    """HTML 502 answer, nothing stored."""

    @property
    def after_commit(self) -> bool:
        """True when the fault fires after the message has been stored."""
        return self.value.endswith("_after_commit")


def _redacted(value: object) -> str:
    """How a token appears in a repr: never its value."""
    return "None" if value is None else "'<redacted>'"


@attrs.define(eq=False)
class FakeAccount:
    """One API token and the user/account behind it (each token is its own viewer)."""

    token: str = attrs.field(repr=_redacted)
    user_id: str
    scopes: frozenset[str] = frozenset()
    claimed: bool = True
    messaging_writes: bool = True

    def can_read_messages(self) -> bool:
        """messages:read, or messages:write which implies it."""
        return "messages:read" in self.scopes or "messages:write" in self.scopes


@attrs.define(eq=False)
class FakeConversation:
    """A direct-message conversation and its stored messages (creation order)."""

    id: str
    participants: set[str]
    created_at: str
    seq: int
    """Global ordering key of the last change; drives list-mode order and cursors."""
    send_block: str | None = None
    readable: bool = True
    job_id: str | None = None
    proposal_id: str | None = None
    bucket: str = "job"
    messages: list[dict[str, Any]] = attrs.field(factory=list)
    updated_at: str = ""

    def unread_for(self, user_id: str) -> int:
        """Messages from others since `user_id` last wrote in this conversation."""
        count = 0
        for message in reversed(self.messages):
            if message["senderUserId"] == user_id:
                break
            count += 1
        return count


@attrs.define(eq=False)
class RecordedRequest:
    """One request as the server received it (Authorization redacted in `headers`)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    token: str | None = attrs.field(repr=_redacted)
    received_at: float
    raw_body: bytes = b""
    raw_path: str = ""
    """The path as sent, percent-escapes kept (``path`` is decoded)."""
    json: Any = None
    status: int | None = None
    """The status answered; None while in progress or when the connection was dropped."""
    conversation_id: str | None = None
    request_id: str | None = None


class ApiError(Exception):
    """A rule refused the request: answer this status, message and ``details``."""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers
