"""Frozen attrs models of the read side: conversations, pages, events, identity, preflight.

All of them are structured with the SDK's one converter (``_models.converter``), so wire
names are derived from the snake_case attribute names and unknown fields are ignored.
Fields the docs leave open are optional, so a server that adds or omits them does not
break a bot.  ``parse_*`` functions turn a decoded body into a model or raise
``UnexpectedResponseError``; no cattrs or ``KeyError`` traceback ever reaches the caller.

Events are read tolerantly (the docs leave the feed's evolution *unknown*, and one bad
record must not stall every bot): an optional field that does not parse is kept as None
with one WARNING naming the event id, and in a /updates page an event that cannot be read
at all (not an object, no id or type, ``data`` not an object) is skipped with a WARNING,
so the page and its cursor, and the feed after it, still go through.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs
import cattrs

from ._errors import UnexpectedResponseError
from ._models import Message, WireModel, converter, structure

__all__ = [
    "EVENT_TYPES",
    "Account",
    "Actor",
    "Capabilities",
    "Conversation",
    "ConversationPage",
    "Event",
    "EventPage",
    "LastMessage",
    "MessagePage",
    "Preflight",
    "PreflightProblem",
    "ProposalConversation",
    "TokenInfo",
    "WhoAmI",
    "parse_capabilities",
    "parse_conversation_page",
    "parse_event",
    "parse_event_page",
    "parse_message_page",
    "parse_proposal_conversation",
    "parse_whoami",
]

T = TypeVar("T")

logger = logging.getLogger("opentrain_async")

EVENT_TYPES = frozenset(
    {
        "proposal.received",
        "proposal.status_changed",
        "message.received",
        "contract.created",
        "milestone.status_changed",
        "payment.pending",
        "approval.confirmed",
        "contract.budget_state_changed",
    }
)
"""The event types the docs list; others pass through as plain ``Event`` records."""


def _strict_str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    """A JSON array of strings; a bare string is refused (cattrs would split it)."""
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    return tuple(converter.structure(item, str) for item in value)


converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strict_str_tuple)

_STRUCTURE_ERRORS = (cattrs.BaseValidationError, TypeError, ValueError, KeyError, AttributeError)


@attrs.frozen(kw_only=True)
class LastMessage(WireModel):
    """The preview of a conversation's latest message (list mode of GET /messages)."""

    id: str
    content: str = ""
    sender_user_id: str | None = None
    is_from_viewer: bool | None = None
    created_at: datetime | None = None


@attrs.frozen(kw_only=True)
class Conversation(WireModel):
    """One conversation the token's account participates in."""

    id: str
    type: str | None = None
    bucket: str | None = None
    """``job``, ``proposal`` or another bucket the server introduces."""
    job_id: str | None = None
    proposal_id: str | None = None
    channel_name: str | None = None
    updated_at: datetime | None = None
    last_message: LastMessage | None = None
    unread_count: int = 0
    needs_reply_count: int = 0


@attrs.frozen(kw_only=True)
class ConversationPage(WireModel):
    """One page of ``list_conversations``; ``next_cursor`` is None on the last page."""

    conversations: tuple[Conversation, ...]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class MessagePage(WireModel):
    """One page of ``read_messages``; ``next_cursor`` is None on the last page.

    The order of ``messages`` inside a page is whatever the server sent (the docs do not
    fix it); sort by ``created_at`` when order matters.
    """

    messages: tuple[Message, ...]
    next_cursor: str | None = None


@attrs.frozen(kw_only=True)
class ProposalConversation(WireModel):
    """The pre-hire thread of a proposal; ``created`` is False when it already existed."""

    conversation_id: str
    proposal_id: str
    job_id: str | None = None
    created: bool = False


@attrs.frozen(kw_only=True)
class Event(WireModel):
    """One record of the /updates feed (also the body of a webhook delivery).

    Unknown ``type`` values pass through unchanged; ``data`` is the raw payload.
    """

    id: str
    type: str
    api_version: str | None = None
    created_at: datetime | None = None
    resource_id: str | None = None
    job_id: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def conversation_id(self) -> str | None:
        """``data.conversationId`` when it is a string (``message.received``), else None."""
        value = self.data.get("conversationId")
        return value if isinstance(value, str) else None

    @property
    def message_id(self) -> str | None:
        """``data.messageId`` when it is a string (``message.received``), else None."""
        value = self.data.get("messageId")
        return value if isinstance(value, str) else None


@attrs.frozen(kw_only=True)
class EventPage(WireModel):
    """One page of ``get_updates``: persist ``next_cursor`` and pass it back."""

    events: tuple[Event, ...]
    next_cursor: str | None = None
    has_more: bool = False


@attrs.frozen(kw_only=True)
class Actor(WireModel):
    """The user a token acts as."""

    user_id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    user_type: str | None = None


@attrs.frozen(kw_only=True)
class TokenInfo(WireModel):
    """The token itself: its id, label and scopes (never its secret)."""

    id: str | None = None
    label: str | None = None
    scopes: tuple[str, ...] = ()
    owner_organization_id: str | None = None


@attrs.frozen(kw_only=True)
class Account(WireModel):
    """The account the token belongs to.

    ``claimed`` and ``claim_url`` are not in the documented shape; they are read when the
    server sends them and are None otherwise.
    """

    kind: str | None = None
    organization_id: str | None = None
    owner_user_id: str | None = None
    member_role: str | None = None
    claimed: bool | None = None
    claim_url: str | None = None


@attrs.frozen(kw_only=True)
class WhoAmI(WireModel):
    """GET /auth/me: who the token acts as, what it may do, and for which account."""

    actor: Actor
    token: TokenInfo = attrs.field(factory=TokenInfo)
    account: Account = attrs.field(factory=Account)

    def has_scope(self, scope: str) -> bool:
        """True if the token holds ``scope`` (``messages:write`` implies ``messages:read``)."""
        scopes = self.token.scopes
        if scope in scopes:
            return True
        if scope.endswith(":read"):
            return scope[: -len(":read")] + ":write" in scopes
        return False


@attrs.frozen(kw_only=True)
class Capabilities(WireModel):
    """GET /job-drafts/capabilities: the account's feature flags.

    ``messaging_writes`` is None when the server did not say; ``flags`` holds every flag
    as sent, for capabilities this SDK does not know yet.
    """

    messaging_writes: bool | None = None
    enabled: bool | None = None
    flags: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class PreflightProblem(WireModel):
    """One reason this token cannot send yet, and how to fix it."""

    code: str
    """``missing_scope``, ``account_not_claimed`` or ``messaging_writes_disabled``."""
    missing: str
    """What is missing: the scope, ``claimed account`` or the capability name."""
    fix: str
    """What to do about it, in one sentence."""
    url: str | None = None
    """Where to fix it, when known (the claim URL)."""


@attrs.frozen(kw_only=True)
class Preflight(WireModel):
    """The answer of ``preflight()``: can this token send, and if not, why not."""

    can_send: bool
    problems: tuple[PreflightProblem, ...]
    whoami: WhoAmI
    capabilities: Capabilities

    def __bool__(self) -> bool:
        return self.can_send


# -- parsing ---------------------------------------------------------------------------


def _unexpected(message: str, status: int, method: str, path: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        f"HTTP {status} but {message}", status=status, method=method, path=path
    )


def _structure(data: Any, cls: type[T], what: str, where: tuple[int, str, str]) -> T:
    try:
        return structure(data, cls)
    except _STRUCTURE_ERRORS as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            detail = "; ".join(cattrs.transform_error(exc))
        else:
            detail = f"{type(exc).__name__}: {exc}"
        raise _unexpected(f"{what} is not a valid {cls.__name__} ({detail})", *where) from None


def _cursor(payload: Mapping[str, Any], where: tuple[int, str, str]) -> str | None:
    value = payload.get("nextCursor")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _unexpected(f"nextCursor is a {type(value).__name__}, not a string", *where)
    return str(value)


def _items(payload: Any, keys: Sequence[str], where: tuple[int, str, str]) -> list[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in keys:
            value = payload.get(key)
            if isinstance(value, list):
                return value
            if value is not None:
                raise _unexpected(f"'{key}' is a {type(value).__name__}, not a list", *where)
    raise _unexpected(f"the body has no list under {' / '.join(map(repr, keys))}", *where)


def parse_conversation_page(payload: Any, status: int, method: str, path: str) -> ConversationPage:
    """Structure a list-mode GET /messages body."""
    where = (status, method, path)
    items = _items(payload, ("conversations", "items", "data"), where)
    conversations = tuple(_structure(item, Conversation, "a conversation", where) for item in items)
    cursor = _cursor(payload, where) if isinstance(payload, dict) else None
    return ConversationPage(conversations=conversations, next_cursor=cursor)


def parse_message_page(payload: Any, status: int, method: str, path: str) -> MessagePage:
    """Structure a message-mode GET /messages body (array under messages/items/data)."""
    where = (status, method, path)
    items = _items(payload, ("messages", "items", "data"), where)
    messages = tuple(_structure(item, Message, "a message", where) for item in items)
    cursor = _cursor(payload, where) if isinstance(payload, dict) else None
    return MessagePage(messages=messages, next_cursor=cursor)


_EVENT_OPTIONAL: tuple[tuple[str, Any], ...] = (
    ("apiVersion", str | None),
    ("createdAt", datetime | None),
    ("resourceId", str | None),
    ("jobId", str | None),
)
"""An event's optional fields (wire name, type): one that does not parse becomes None."""

_ID_SHOWN = 40
"""Characters of a malformed record's id a warning shows: enough for any real id (a
numeric string), little room for a hostile server's payload in the logs."""


def _event_dict(item: Any, where: tuple[int, str, str]) -> Any:
    if not isinstance(item, dict):
        return item  # the converter reports the wrong shape
    fixed = dict(item)
    if isinstance(fixed.get("id"), int) and not isinstance(fixed.get("id"), bool):
        fixed["id"] = str(fixed["id"])  # "a numeric event id": accept it unquoted too
    if fixed.get("data") is None:
        fixed["data"] = {}
    elif not isinstance(fixed["data"], dict):
        raise _unexpected(f"an event's data is a {type(fixed['data']).__name__}", *where)
    dropped = []
    for name, kind in _EVENT_OPTIONAL:
        try:
            converter.structure(fixed.get(name), kind)
        except _STRUCTURE_ERRORS:
            fixed[name] = None
            dropped.append(name)
    if dropped:  # names only: the values are the server's, never logged
        logger.warning(
            "event %s: %s did not parse; kept as None", _shown_id(item), ", ".join(dropped)
        )
    return fixed


def _shown_id(item: Any) -> str:
    """A record's id for a log line: a string or number, cut short; else a placeholder."""
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return "<no readable id>"
    return repr(str(value)[:_ID_SHOWN])


def parse_event(payload: Any, status: int, method: str, path: str) -> Event:
    """Structure one event record (an /updates entry or a webhook body).

    Optional fields that do not parse are None (logged); a record without a string
    ``id`` and ``type``, or whose ``data`` is not an object, raises.
    """
    where = (status, method, path)
    return _structure(_event_dict(payload, where), Event, "the event", where)


def _readable_events(items: list[Any], where: tuple[int, str, str]) -> tuple[Event, ...]:
    """The page's events that can be read; each other one is skipped with a WARNING."""
    events = []
    for item in items:
        try:
            events.append(parse_event(item, *where))
        except UnexpectedResponseError as exc:
            reason = exc.message.removeprefix(f"HTTP {where[0]} but ")
            logger.warning("/updates event %s skipped: %s", _shown_id(item), reason)
    return tuple(events)


def parse_event_page(payload: Any, status: int, method: str, path: str) -> EventPage:
    """Structure a GET /updates body; unreadable events are skipped (see the module)."""
    where = (status, method, path)
    if not isinstance(payload, dict):
        raise _unexpected("the body is not a JSON object", *where)
    items = _items(payload, ("events",), where)
    events = _readable_events(items, where)
    has_more = payload.get("hasMore", False)
    if not isinstance(has_more, bool):
        raise _unexpected(f"hasMore is a {type(has_more).__name__}, not a boolean", *where)
    return EventPage(events=events, next_cursor=_cursor(payload, where), has_more=has_more)


def parse_proposal_conversation(
    payload: Any, status: int, method: str, path: str
) -> ProposalConversation:
    """Structure a POST /proposals/{id}/conversation body."""
    return _structure(payload, ProposalConversation, "the body", (status, method, path))


def parse_whoami(payload: Any, status: int, method: str, path: str) -> WhoAmI:
    """Structure a GET /auth/me body."""
    return _structure(payload, WhoAmI, "the body", (status, method, path))


def parse_capabilities(payload: Any, status: int, method: str, path: str) -> Capabilities:
    """Structure a GET /job-drafts/capabilities body."""
    where = (status, method, path)
    if not isinstance(payload, dict):
        raise _unexpected("the body is not a JSON object", *where)
    flags = payload.get("capabilities", {})
    if not isinstance(flags, dict):
        raise _unexpected(f"'capabilities' is a {type(flags).__name__}, not an object", *where)
    writes = flags.get("messagingWrites")
    if writes is not None and not isinstance(writes, bool):
        raise _unexpected("capabilities.messagingWrites is not a boolean", *where)
    enabled = payload.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise _unexpected("'enabled' is not a boolean", *where)
    return Capabilities(messaging_writes=writes, enabled=enabled, flags=dict(flags))
