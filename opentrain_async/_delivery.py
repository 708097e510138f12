"""Delivery: one message lands exactly once, or the caller is told it may have.

``Delivery.deliver`` POSTs the message through the client's request pipeline (handed
in as two callables: one attempt, and the retries after a failed first attempt).  When
the outcome is unknown (a timeout after the request was written, a dropped connection,
a 5xx, a 2xx that cannot be read) it never resends blindly: POST /messages has no
idempotency key, so the only way to avoid both loss and duplicates is to look.

Read-back walks the conversation from the newest message and searches for our own: from
the viewer, same content, created after the first attempt began (less ``clock_skew``),
and not already claimed by another send of this client.  Found: that is the outcome.
Not found, after reading back to before the first attempt: the message was not
delivered and may be resent.  Unreadable, or not read back that far: the outcome stays
unknown.  The bound is time (the messages' own timestamps, and a budget in seconds),
never a page count, so a busy conversation cannot make "not read" look like "not
delivered".  Nothing here knows the client: the reader is any ``MessageReader``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import cattrs

import opentrain_async._telemetry as _telemetry

from ._answers import masked, secret_forms
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    OpenTrainError,
    UnexpectedResponseError,
)
from ._http_date import server_time
from ._json import json_dumps
from ._models import Message, structure_message_hook
from ._pagination import AsyncPaginator
from ._read_models import MessagePage
from ._retry import RetryPolicy
from ._seen import RecentSet
from ._time import Clock
from ._validation import validate_content, validate_number

logger = logging.getLogger("opentrain_async")

__all__ = ["ClaimedIds", "Delivery", "MessageReader", "find_own_message"]

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
        if not isinstance(ids, Container):  # e.g. None: every later send would fail
            raise InvalidRequestError(
                f"message_ids must be a collection of message ids, got {type(ids).__name__}",
                field="message_ids",
                limit="a collection (set, dict, list...)",
                actual=type(ids).__name__,
            )
        self._elsewhere.append(ids)

    def add(self, message_id: str) -> None:
        """Remember ``message_id`` (the least recent is forgotten beyond capacity)."""
        self._ids.add(message_id)

    def __contains__(self, message_id: object) -> bool:
        if message_id in self._ids:
            return True
        return isinstance(message_id, str) and any(message_id in c for c in self._elsewhere)

    def known_ours(self, message_id: str) -> bool:
        """``message_id`` is ours though not claimed (a reply's own earlier answer): ours
        even when the server does not say so (``isFromViewer`` missing)."""
        return False


async def find_own_message(
    reader: MessageReader,
    conversation_id: str,
    content: str,
    *,
    since: float,
    claimed: ClaimedIds,
    cause: DeliveryUnknownError,
    skew: float = 0.0,
    budget: float = READ_BACK_BUDGET,
    clock: Callable[[], float] = time.monotonic,
    page_size: int = PAGE_LIMIT,
    answered: str | None = None,
    server_ahead: Callable[[Sequence[Message]], float] = lambda page: 0.0,
) -> Message | None:
    """Search the conversation for our unclaimed message created at or after ``since``
    (when the first attempt began, Unix seconds) less ``skew`` seconds, with our
    ``content`` or the id ``answered`` (what a 2xx to this send named: a server that
    trims or normalizes content answers with what it stored).  ``server_ahead(page)``:
    how far the server's clock runs ahead of ours, by the page's answer's ``Date``; when
    ours runs ahead, ``since`` moves back by as much, so a client clock minutes fast
    still finds its own message instead of resending it.

    Walks back from the newest message until the messages are older than ``since`` or
    there are no more: only then is "not found" an answer (None).  Anything short of it
    is ``DeliveryUnknownError`` (chained to the cause): unreadable, a malformed page, a
    repeated cursor, over ``budget`` s, or only matches that do not say whose they are."""
    since_dt = datetime.fromtimestamp(since - skew, tz=timezone.utc)
    deadline = clock() + budget
    walk = reader.iter_messages(conversation_id, limit=page_size)
    pages = 0
    unsaid = False  # a match that did not say whose it is: "not there" is no answer then
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
            behind = min(0.0, server_ahead(page.messages))  # this page's answer's Date
            since_dt = min(since_dt, datetime.fromtimestamp(since + behind - skew, tz=timezone.utc))
            found = _claim_ours(page.messages, content, since_dt, claimed, answered)
            if found is _UNSAID:
                unsaid = True  # read on: ours, attributed, may be older (the peer's echo)
            elif found is not None:
                return found
            if any(m.created_at < since_dt for m in page.messages):
                break  # read back to before the first attempt: it is not there
            if clock() >= deadline:
                why = f"was not read back far enough within {budget:g} s ({pages:,} pages)"
                raise _unknown(conversation_id, cause, why)
    if unsaid or walk.repeated_cursor:
        raise _unknown(conversation_id, cause, _UNSAID_WHY if unsaid else _repeated(pages))
    return None  # the whole conversation was read: it is not there


def _repeated(pages: int) -> str:
    return (
        "could not be read back to check (the server returned the same cursor again, "
        f"or one it had already given, after {pages:,} pages)"
    )


def _claim_ours(
    messages: Iterable[Message],
    content: str,
    since: datetime,
    claimed: ClaimedIds,
    answered: str | None = None,
) -> Message | None:
    """Our message with exactly ``content`` (or the id ``answered``), stamped at or
    after ``since`` and not claimed yet, now claimed (the order inside a page is not
    documented).  ``_UNSAID`` when such a message does not say whose it is
    (``isFromViewer`` missing): ours or the other side's, resending could duplicate it.
    The one a 2xx to our POST named (``answered``) is ours though, as that 2xx was, and
    so is one ``claimed`` knows as ours (``ClaimedIds.known_ours``)."""
    unsaid = False
    for message in messages:
        if (
            message.is_from_viewer is not False
            and (message.content == content or message.id == answered)
            and message.created_at >= since
            and message.id not in claimed
        ):
            known = message.id == answered or claimed.known_ours(message.id)
            if message.is_from_viewer is None and not known:
                unsaid = True
                continue
            claimed.add(message.id)
            return message
    return _UNSAID if unsaid else None


_UNSAID = Message(id="", conversation_id="", created_at=datetime.min.replace(tzinfo=timezone.utc))
"""What ``_claim_ours`` finds when a matching message does not say whose it is."""
_UNSAID_WHY = "holds a message with our content that does not say whose it is (no isFromViewer)"


def _unknown(conversation_id: str, cause: DeliveryUnknownError, why: str) -> DeliveryUnknownError:
    return DeliveryUnknownError(
        f"sending to {conversation_id}: the outcome is unknown and the conversation {why}; "
        "not resending",
        cause=cause.__cause__,
        conversation_id=conversation_id,
        started_at=cause.started_at,
    )


Attempt = Callable[..., Awaitable[tuple[int, Any]]]
"""One HTTP attempt of the pipeline: ``(method, path, params, body, gate=None) ->
(status, json)``; ``gate`` is the bulk engine behind a send (it may refuse to start)."""
RetryAfter = Callable[..., Awaitable[tuple[int, Any]]]
"""The pipeline's retries after a failed first attempt (raises when it may not retry):
``(failure, method, path, params, body, idempotent=False, gate=None, paced=False)``."""


class Delivery:
    """Send, read back, and the ids already claimed: everything "exactly once" needs.

    ``attempt`` and ``retry_after`` are the request pipeline's; ``reader`` reads
    conversations back; ``claimed`` may be shared (a client and its ``with_options``
    copies share one).  ``policy.max_retries`` bounds resends after a read-back found
    nothing; ``clock`` is the client's time seam.
    """

    def __init__(
        self,
        attempt: Attempt,
        retry_after: RetryAfter,
        reader: MessageReader,
        policy: RetryPolicy,
        clock: Clock,
        *,
        claimed: ClaimedIds | None = None,
        reconcile_delay: float = 1.0,
        clock_skew: float = 60.0,
        log_content: bool = False,
        secret: str = "",
        answer_headers: Callable[[], Mapping[str, str] | None] = lambda: None,
    ) -> None:
        self._attempt = attempt
        self._answer_headers = answer_headers
        # The server's ids and fields reach errors and log records only masked: a
        # hostile server may echo the Authorization header in them.
        self._mask = functools.partial(masked, forms=secret_forms(secret)) if secret else str
        self._retry_after = retry_after
        self._reader = reader
        self._policy = policy
        self._clock = clock
        self.claimed = ClaimedIds() if claimed is None else claimed
        self.reconcile_delay = reconcile_delay
        """Seconds a timed-out request is given to finish server-side before read-back."""
        self.clock_skew = clock_skew
        """How far before the first attempt a found message may be stamped."""
        self.log_content = log_content

    async def deliver(
        self,
        conversation_id: str,
        content: str,
        reconcile: bool,
        gate: Any = None,
        paced: bool = False,
    ) -> tuple[Message, bool]:
        """POST the message; on an unknown outcome, read back before any resend.
        ``gate``: the bulk engine sending it, asked before each attempt (``attempt``).

        Returns the message and whether read-back (not the POST's answer) found it.
        ``paced``: a bulk send's, whose rounded one-second hints are the pacer's to
        wait (``Pipeline.retry_after``).
        """
        started = self._clock.wall()
        if self.log_content and logger.isEnabledFor(logging.DEBUG):
            logger.debug("sending to %s: %r", conversation_id, content)
        body = json_dumps({"conversationId": conversation_id, "content": content})
        resends = 0
        while True:
            answered: str | None = None  # the id a 2xx named, if it names one
            try:
                try:
                    status, payload = await self._attempt("POST", "/messages", None, body, gate)
                except OpenTrainError as exc:
                    status, payload = await self._retry_after(
                        exc, "POST", "/messages", None, body, gate=gate, paced=paced
                    )
                message = _parse_message(payload, status, "POST", "/messages")
                answered = message.id
                _check_sent(payload, message, conversation_id, content, status, self, started)
            except (APIConnectionError, InternalServerError, UnexpectedResponseError) as exc:
                # A 2xx we cannot read is an unknown outcome too: it was most likely
                # committed, so reporting it as failed would invite a duplicate.
                if isinstance(exc, APIConnectionError) and exc.reached_server is False:
                    raise
                unknown = DeliveryUnknownError(
                    f"sending to {conversation_id} failed after the request may have reached "
                    f"the server ({exc}); the message may or may not have been delivered",
                    cause=exc,
                    conversation_id=conversation_id,
                    started_at=started,
                )
                if not reconcile:
                    raise unknown from exc
                found = await self._read_back(conversation_id, content, started, unknown, answered)
                if found is not None:
                    return found, True
                resends += 1
                if resends > self._policy.max_retries:
                    raise
                logger.info(
                    "send to %s: outcome was unknown (%s); not found by read-back, resending",
                    conversation_id,
                    type(exc).__name__,
                )
                continue
            self.claimed.add(message.id)
            return message, False

    def stale(self, message: Message, started: float) -> str | None:
        """Why a 2xx's message is not this send's by its age, or None: stamped longer
        before the server's own clock (its answer's ``Date``, plus ``Age`` from a cache)
        than ``clock_skew`` and the request's time allow.  An old message of ours in a
        replayed answer (a proxy's cache, a server deduplicating without storing).  Our
        clock alone never decides: one running minutes fast would take every genuine 201
        for a replay, and read-back, bounded by the same clock, resend it.  It only spares
        the common case the date: a stamp within ``clock_skew`` of the first attempt
        (``started``) either way; not only after it, or a clock behind let replays in."""
        if abs(message.created_at.timestamp() - started) <= self.clock_skew:
            return None  # the common case, with no date to parse
        now = server_time(self._answer_headers())
        if now is None:  # no Date, or not an HTTP date: nothing to judge by
            return None
        # The request's own time counts (a slow commit), and Date's whole seconds.
        window = self.clock_skew + max(0.0, self._clock.wall() - started) + 1.0
        age = (now - message.created_at).total_seconds()
        if age <= window:
            return None
        return (
            f"message {message.id!r}, stamped {age:,.0f} s before the server's own "
            "answer (an old message in a replayed answer)"
        )

    async def find_own_message(
        self, conversation_id: str, content: str, *, since: float
    ) -> Message | None:
        """Our unclaimed message with ``content``, sent at ``since`` (Unix seconds, the
        first attempt's start) or up to ``clock_skew`` earlier; None when the
        conversation was read back that far without it (see ``find_own_message``)."""
        validate_content(content)  # other content can never match: None would mean "resend"
        validate_number(since, "since", minimum=0)
        unknown = DeliveryUnknownError(
            f"the outcome of a send to {conversation_id} is unknown",
            conversation_id=conversation_id,
            started_at=since,
        )
        return await self._find(conversation_id, content, since, unknown)

    async def _find(
        self,
        conversation_id: str,
        content: str,
        since: float,
        unknown: DeliveryUnknownError,
        answered: str | None = None,
    ) -> Message | None:
        """``find_own_message`` with this delivery's reader, skew, claimed ids and clock."""
        return await find_own_message(
            self._reader,
            conversation_id,
            content,
            since=since,
            skew=self.clock_skew,
            claimed=self.claimed,
            cause=unknown,
            clock=self._clock.monotonic,
            answered=answered,
            server_ahead=self._server_ahead,
        )

    def _server_ahead(self, page: Sequence[Message]) -> float:
        """Seconds the server's clock (the latest 2xx's ``Date``) runs ahead of ours; 0
        without a date, for one further off than ``_CLOCKS_APART`` (a proxy stamping 1970
        would have read-back walk the whole conversation), or one ``page`` contradicts
        with a message stamped over ``clock_skew`` after it: not the clock stamping
        messages (a proxy's, hours behind), it let an older message of ours pass."""
        now, late = server_time(self._answer_headers()), timedelta(seconds=self.clock_skew)
        if now is None or any(message.created_at > now + late for message in page):
            return 0.0
        ahead = now.timestamp() - self._clock.wall()
        return ahead if abs(ahead) <= _CLOCKS_APART else 0.0

    async def _read_back(
        self,
        conversation_id: str,
        content: str,
        started: float,
        unknown: DeliveryUnknownError,
        answered: str | None,
    ) -> Message | None:
        """Settle an unknown outcome: our message if the server has it (by content, or
        by the id its 2xx ``answered``), else None: never after an answer judged a
        replay (``stale``), which stays unknown.  A resend would meet the same cache or
        deduplication, or, at a server whose createdAt runs on another clock than its
        Date (no zone, a lagging app server), store the message again each time."""
        if isinstance(unknown.__cause__, APITimeoutError) and self.reconcile_delay > 0:
            # The server may still be processing the request we gave up on.
            await self._clock.sleep(self.reconcile_delay)
        found = await self._find(conversation_id, content, started, unknown, answered)
        _telemetry.read_back(found is not None)
        if found is None and isinstance(unknown.__cause__, _ReplayedAnswer):
            raise unknown
        if found is not None:
            logger.info(
                "send to %s: outcome was unknown (%s); read-back found message %s",
                conversation_id,
                type(unknown.__cause__).__name__,
                self._mask(found.id),
            )
        return found


_CLOCKS_APART = 86400.0
"""The most our clock and a server's ``Date`` are taken to differ by (a day): a client
whose NTP failed drifts minutes to hours; a Date further off is a proxy's placeholder."""


def _parse_message(payload: Any, status: int, method: str, path: str) -> Message:
    message = payload.get("message") if isinstance(payload, dict) else None
    try:
        parsed: Message = structure_message_hook(message, Message)
        return parsed
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise UnexpectedResponseError(
            f"HTTP {status} but the body has no valid 'message' object "
            f"({type(exc).__name__}: {exc})",
            status=status,
            method=method,
            path=path,
        ) from None


def answer_mismatch(
    payload: Any, message: Message, conversation_id: str, content: str, claimed: Container[str]
) -> str | None:
    """Why a 2xx answer to our POST does not describe the message we sent, or None.

    It must be a new message (an id no other send claimed) of our conversation, from
    us (``isFromViewer``), with our content, in a body that does not say ``"ok": false``.
    Anything else proves nothing was stored for this send (a lying server, a proxy
    cache, a mixed-up answer): the outcome is unknown and read-back settles it.
    """
    if isinstance(payload, dict) and "ok" in payload and payload["ok"] is not True:
        return f"a body with ok={payload['ok']!r}"
    if message.conversation_id != conversation_id:
        return f"a message of conversation {message.conversation_id!r}"
    if message.id in claimed:
        return f"message {message.id!r}, already the outcome of another send"
    if message.is_from_viewer is False:  # None: not said, and it answers our own POST
        return f"message {message.id!r}, not from this account (isFromViewer false)"
    if message.content != content:
        return f"message {message.id!r}, with other content"
    return None


class _ReplayedAnswer(UnexpectedResponseError):
    """A 2xx naming a message stamped long before the answer (``Delivery.stale``): an
    unknown outcome read back, but never resent when read-back finds nothing."""


def _check_sent(
    payload: Any,
    message: Message,
    conversation_id: str,
    content: str,
    status: int,
    delivery: Delivery,
    started: float,
) -> None:
    """Raise ``UnexpectedResponseError`` (an unknown outcome, read back, never
    "delivered") when the answer does not describe our message (``answer_mismatch``,
    ``Delivery.stale``: ``_ReplayedAnswer``; its text quotes the server's fields, so the
    token is masked)."""
    why = answer_mismatch(payload, message, conversation_id, content, delivery.claimed)
    error = UnexpectedResponseError
    if why is None:
        why, error = delivery.stale(message, started), _ReplayedAnswer
    if why is None:
        return
    raise error(
        f"HTTP {status} for a send to {conversation_id!r} but the answer is " + delivery._mask(why),
        status=status,
        method="POST",
        path="/messages",
    )
