"""What bulk sending produces: one ``SendOutcome`` per input, its ``kind``, the
``BulkReport`` of a whole batch, and which failures stop the engine.

Split from ``_bulk`` (the ``send_many``/``send_all`` surface) and ``_bulk_engine``
(the workers); ``_bulk`` re-exports every public name here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any, Literal, get_args

import attrs

from ._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BlockedByEarlierFailureError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    JobJournalError,
    NotAttemptedError,
    NotFoundError,
    OpenTrainError,
    PermissionDeniedError,
    RateLimitError,
    UnexpectedResponseError,
)
from ._models import Message, OutgoingMessage
from ._validation import validate_content, validate_conversation_id

__all__ = [
    "ACCOUNT_REASONS",
    "DEFAULT_KEEP_FAILURES",
    "OUTCOME_KINDS",
    "BeforeSend",
    "BulkReport",
    "Deliver",
    "OutcomeKind",
    "Pulled",
    "SendItem",
    "SendOutcome",
    "check_items",
    "normalize_item",
    "outcome_kind",
    "parse_input",
    "quota_gone",
    "stops_engine",
]

ACCOUNT_REASONS = frozenset(
    {
        "insufficient_scope",
        "missing_scope",
        "feature_disabled",
        "messaging_writes_disabled",
        "account_claim_required",
    }
)
"""403 reasons about the token or account, not the message: every send would get them."""


def stops_engine(error: OpenTrainError) -> bool:
    """True for failures every later send of this token would meet too: 401, a 403
    about the account or token (missing scope, feature disabled, unclaimed account), a
    client that cannot send at all (closed, or its session closed), and a journal that
    can no longer record (``journal=``)."""
    if isinstance(error, (AuthenticationError, ConfigurationError, JobJournalError)):
        return True
    if isinstance(error, PermissionDeniedError):
        return error.reason in ACCOUNT_REASONS or "requiredScope" in error.details
    return False


def quota_gone(error: OpenTrainError, max_wait: float) -> bool:
    """A 429 whose hint is beyond what a send waits (``max_retry_after``): the quota is
    gone for longer than the job can wait, and every later send would meet it too, one
    pacer pause each.  The rest of the job is not attempted (a rerun sends it)."""
    return isinstance(error, RateLimitError) and (error.retry_after or 0) > max_wait


Deliver = Callable[[str, str, bool, Any, bool], Awaitable[tuple[Message, bool]]]
"""What the engine sends through: ``deliver(conversation_id, content, reconcile, gate,
paced)`` returns the message and whether read-back found it, or raises an
``OpenTrainError``.  ``gate`` is the engine: once its ``refusal`` says so no new send
may start.  ``paced``: the input's 429s with a rounded one-second hint are left to the
pacer (False once the engine has waited out a 429 of this input itself; see
``RetryPolicy.compute_wait``)."""

BeforeSend = Callable[[int, Any], Awaitable["tuple[Message, bool] | None"]]
"""Awaited with each input's index and item right before its send (a journal's durable
"started" record).  A message returned settles the input without a send (a journal that
already has it delivered); an ``OpenTrainError`` raised is its outcome."""

SendItem = tuple[str, str] | Mapping[str, Any] | OutgoingMessage
"""What ``send_many`` accepts per input: a ``(conversation_id, content)`` tuple, a mapping
with ``conversationId``/``content`` (and optional ``key``), or an ``OutgoingMessage``."""

OutcomeKind = Literal[
    "sent",
    # failures found here
    "invalid",
    "delivery_unknown",
    "blocked_by_earlier_failure",
    "not_attempted",
    "connection_error",
    "unexpected_response",
    "error",
    # the server's details.reason, as documented or seen
    "account_claim_required",
    "message_policy_blocked",
    "employer_first_message_required",
    "read_only_conversation",
    "message_blocked",
    "insufficient_scope",
    "missing_scope",
    "feature_disabled",
    "messaging_writes_disabled",
    "not_participant",
    "proposal_not_ready_for_messaging",
    # the server's code, when it gave no known reason
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "rate_limited",
    "internal_error",
]
"""Every value ``SendOutcome.kind`` takes (a closed set: ``match`` on it is exhaustive)."""

OUTCOME_KINDS: frozenset[OutcomeKind] = frozenset(get_args(OutcomeKind))

_KIND_BY_CLASS: tuple[tuple[type[OpenTrainError], OutcomeKind], ...] = (
    (InvalidRequestError, "invalid"),
    (DeliveryUnknownError, "delivery_unknown"),
    (BlockedByEarlierFailureError, "blocked_by_earlier_failure"),
    (NotAttemptedError, "not_attempted"),
    (APIConnectionError, "connection_error"),
    (UnexpectedResponseError, "unexpected_response"),
    (BadRequestError, "bad_request"),
    (AuthenticationError, "unauthorized"),
    (PermissionDeniedError, "forbidden"),
    (NotFoundError, "not_found"),
    (ConflictError, "conflict"),
    (RateLimitError, "rate_limited"),
    (InternalServerError, "internal_error"),
)


@attrs.frozen
class SendOutcome:
    """The one outcome of one input: ``message`` when ``ok``, ``error`` otherwise.

    Its ``repr`` shows neither the content nor the input (message content is logged
    only when asked): index, key, kind, message id.
    """

    index: int
    """Position of the input in the iterable, from 0."""
    item: SendItem
    """The input exactly as given."""
    message: Message | None = None
    error: OpenTrainError | None = None
    key: str | None = None
    """The caller's correlation key, when the input carried one."""
    reconciled: bool = False
    """True when the message was found by read-back after an unknown outcome."""

    @property
    def ok(self) -> bool:
        """True when the message was delivered."""
        return self.message is not None

    @property
    def kind(self) -> OutcomeKind:
        """``sent``, or a short name for the failure (see ``outcome_kind``)."""
        return outcome_kind(self.error)

    @property
    def reason(self) -> str | None:
        """The server's ``details.reason`` exactly as sent (also one ``kind`` does not know)."""
        return None if self.error is None else self.error.reason

    def __repr__(self) -> str:
        what = f"message_id={self.message.id!r}" if self.message else f"error={self.kind}"
        return (
            f"SendOutcome(index={self.index}, key={self.key!r}, kind={self.kind!r}, {what}"
            f"{', reconciled=True' if self.reconciled else ''})"
        )


def outcome_kind(error: OpenTrainError | None) -> OutcomeKind:
    """Classify an outcome for reports: ``sent``, ``invalid``, ``delivery_unknown``, the
    server's ``details.reason`` when it is a known one (``read_only_conversation``...),
    else the kind of error (``forbidden``, ``rate_limited``...).  Always an ``OutcomeKind``."""
    if error is None:
        return "sent"
    reason = error.reason if isinstance(error, APIStatusError) else None
    if reason in OUTCOME_KINDS:
        return reason
    for cls, kind in _KIND_BY_CLASS:
        if isinstance(error, cls):
            return kind
    return "error"


def check_items(items: object) -> None:
    """Refuse, before anything is pulled, ``items`` that cannot be a job's inputs: not
    iterable (``None`` raised a bare TypeError), or iterable into nothing but invalid
    inputs (one message given as the job: each character or key became an "invalid"
    outcome, and the message was not sent)."""
    why = None
    if isinstance(items, (str, bytes)):
        why = "a string (each character would be an input)"
    elif isinstance(items, Mapping):
        why = "a mapping: pass [mapping] for one message, mapping.items() for {id: text}"
    elif isinstance(items, (tuple, list)) and items and all(isinstance(x, str) for x in items):
        # (A list too: ``[conversation_id, content]`` is the same slip, and a string is
        # never an input, so a job of strings only can never send anything.)
        why = "only strings (one (conversation_id, content) pair?): pass [(id, content)]"
    elif not isinstance(items, (Iterable, AsyncIterable)) and not hasattr(items, "__getitem__"):
        why = f"{type(items).__name__}, not an iterable or async iterable"
    if why is not None:
        raise ConfigurationError(f"items must be the job's messages, got {why}")


def normalize_item(item: Any) -> OutgoingMessage:
    """Turn one accepted input shape into a validated ``OutgoingMessage``."""
    if isinstance(item, OutgoingMessage):
        message = item
        if item.key is not None and not isinstance(item.key, str):
            # As a mapping's key is: a journal knows an input by ``key:<text>``, so an
            # int 5 and a "5" are one key (twice: a duplicate), and a 0 is a key.
            message = OutgoingMessage(item.conversation_id, item.content, str(item.key))
    elif isinstance(item, Mapping):
        key = item.get("key")
        conversation_id: Any = item.get("conversationId", item.get("conversation_id"))
        content: Any = item.get("content")
        for name, value in (("conversationId", conversation_id), ("content", content)):
            if (
                value is None
                and name not in item
                and not (name == "conversationId" and "conversation_id" in item)
            ):  # say so: "must be a string, got NoneType" hides a misnamed column
                raise InvalidRequestError(
                    f"the item has no {name!r} key (it has: {', '.join(map(repr, item))[:200]})",
                    field=name,
                    limit=f"a mapping with {name!r}",
                    actual=None,
                )
        message = OutgoingMessage(conversation_id, content, None if key is None else str(key))
    elif isinstance(item, tuple) and len(item) == 2:
        message = OutgoingMessage(item[0], item[1])
    else:
        raise InvalidRequestError(
            "each item must be a (conversation_id, content) tuple, a mapping with "
            f"conversationId/content, or an OutgoingMessage; got {type(item).__name__}",
            field="item",
            limit="(conversation_id, content) | mapping | OutgoingMessage",
            actual=type(item).__name__,
        )
    validate_conversation_id(message.conversation_id)
    validate_content(message.content)
    return message


DEFAULT_KEEP_FAILURES = 1000


@attrs.define
class BulkReport:
    """Totals of a whole batch (from ``OpenTrainClient.send_all``).

    ``failures`` keeps the first ``keep_failures`` failed outcomes (1,000 by default), so
    a batch of millions with a bad day stays in bounded memory; ``failures_dropped``
    counts the rest (``on_outcome`` sees every one).  The ``repr`` shows no content.
    """

    total: int = 0
    sent: int = 0
    counts: Counter[OutcomeKind] = attrs.Factory(Counter)
    """Outcomes by kind (``sent``, ``invalid``, ``read_only_conversation``, ...)."""
    failures: list[SendOutcome] = attrs.field(factory=list, repr=False)
    """The first ``keep_failures`` outcomes that were not delivered (inputs included)."""
    reconciled: int = 0
    """Deliveries confirmed by read-back after an unknown outcome."""
    elapsed: float = 0.0
    keep_failures: int = DEFAULT_KEEP_FAILURES
    failures_dropped: int = 0
    """Failed outcomes beyond ``keep_failures``, counted but not kept."""
    by_reason: Counter[str] = attrs.Factory(Counter)
    """Failed outcomes by the server's ``details.reason`` exactly as sent, else by
    ``kind``: a reason the SDK does not know yet keeps its own name here (``counts``
    files it under its error's kind, ``forbidden`` say)."""

    @property
    def failed(self) -> int:
        """Inputs that were not delivered."""
        return self.total - self.sent

    def add(self, outcome: SendOutcome) -> None:
        """Account for one outcome."""
        self.total += 1
        if outcome.message is not None:
            self.sent += 1
            self.counts["sent"] += 1
            if outcome.reconciled:
                self.reconciled += 1
        else:
            kind = outcome.kind
            self.counts[kind] += 1
            self.by_reason[outcome.reason or kind] += 1
            if len(self.failures) < self.keep_failures:
                self.failures.append(outcome)
            else:
                self.failures_dropped += 1


Pulled = tuple[int, Any, "str | None", "str | None", Any]
"""An input as pulled: ``Parked``, but with no conversation id when invalid unordered."""


def parse_input(index: int, item: Any, *, ordered: bool) -> Pulled:
    """One input as ``(index, item, key, conversation_id, content)``; an invalid input's
    content is its ``InvalidRequestError``, and its conversation id, in order, is the
    valid one it names, if any (it still waits its turn there)."""
    key = None
    conversation_id = None
    content: Any
    try:
        if item.__class__ is tuple and len(item) == 2:  # the common shape
            conversation_id = validate_conversation_id(item[0])
            content = validate_content(item[1])
        else:
            key = _key_of(item)  # kept even when the rest of the item is invalid
            outgoing = normalize_item(item)
            key = outgoing.key
            conversation_id = outgoing.conversation_id
            content = outgoing.content
    except InvalidRequestError as exc:
        if not ordered or conversation_id is None:
            conversation_id = _conversation_of(item) if ordered else None
        content = exc  # its outcome, in its turn
    return (index, item, key, conversation_id, content)


def _conversation_of(item: Any) -> str | None:
    """The valid conversation id of an input whose content is invalid, else None."""
    if isinstance(item, OutgoingMessage):
        value: Any = item.conversation_id
    elif isinstance(item, tuple) and len(item) == 2:
        value = item[0]
    elif isinstance(item, Mapping):
        value = item.get("conversationId", item.get("conversation_id"))
    else:
        return None
    try:
        return validate_conversation_id(value)
    except InvalidRequestError:
        return None


def _key_of(item: Any) -> str | None:
    if isinstance(item, OutgoingMessage):
        return item.key
    if isinstance(item, Mapping) and item.get("key") is not None:
        return str(item["key"])
    return None
