"""Sending many messages, and settling sends by read-back: a base of ``OpenTrainClient``.

``SendMixin`` holds the client's bulk surface (``send_many``, ``send_all``) and the
read-back knobs a journal uses (``find_own_message``, ``claim_ids``,
``reconcile_delay``, ``clock_skew``, ``log_content``), over the client's ``Delivery``,
retry policy and time seam.  A base for the reason ``ReadMixin`` is one: these methods
are the client's public surface.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Container, Iterable
from typing import Any

from ._bulk import (
    DEFAULT_KEEP_FAILURES,
    BulkReport,
    BulkSend,
    OnFailure,
    SendHooks,
    SendItem,
    SendOutcome,
    run_batch,
)
from ._delivery import Delivery
from ._models import Message
from ._pipeline import Pipeline
from ._time import Clock
from ._validation import validate_conversation_id

__all__ = ["JournalSpec", "SendMixin"]

JournalSpec = Any
"""``journal=``: a path (``str``/``os.PathLike``), a ``redis://...?job=NAME`` URL, or a
journal store (see ``opentrain_async.journal``)."""


class SendMixin:
    """Bulk sends and read-back over the client's delivery (see the module)."""

    _delivery: Delivery
    _pipeline: Pipeline
    _time: Clock
    max_concurrency: int
    _journal: Callable[[JournalSpec], SendHooks]

    def send_many(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        grace: float = 5.0,
        before_send: Callable[[Any], Awaitable[None] | None] | None = None,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        journal: JournalSpec | None = None,
    ) -> BulkSend:
        """Send many messages; an async iterator with exactly one ``SendOutcome`` per input.

        ``items`` is any iterable or async iterable of ``(conversation_id, content)``
        tuples, mappings with ``conversationId``/``content`` (optional ``key``), or
        ``OutgoingMessage``s; it is pulled lazily as capacity frees up.  Outcomes arrive
        in completion order; ``outcome.index`` is the input position.  ``concurrency``
        (default: ``max_concurrency``) bounds inputs in progress; the client's
        semaphore still bounds requests on the wire and its pacer the rate.  Unknown
        outcomes are reconciled by read-back unless ``reconcile=False``.  Leaving the
        loop early (``break`` or an exception under ``async with``, or ``aclose()``)
        starts no new send and gives sends on the wire ``grace`` seconds to finish; the
        outcomes the loop did not see are then in ``.unreported``.  ``before_send`` is
        called (and awaited, if async) with each valid input right before its send (a
        journal's durable "started" record); an ``OpenTrainError`` it raises is that
        input's outcome.

        ``ordered`` (default) sends the inputs of one conversation one after the other,
        each once the one before has its outcome; when one fails for good the rest of
        its conversation gets ``BlockedByEarlierFailureError`` unless
        ``on_failure="continue"``.  ``journal`` (a path, a ``redis://...?job=NAME`` URL
        or a store) makes the run exactly-once across retries: see ``send_all``.
        """
        return BulkSend(
            self._delivery.deliver,
            items,
            policy=self._pipeline.retry_policy,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            grace=grace,
            before_send=before_send,
            ordered=ordered,
            on_failure=on_failure,
            hooks=None if journal is None else self._journal(journal),
        )

    async def send_all(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None = None,
        keep_failures: int = DEFAULT_KEEP_FAILURES,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        journal: JournalSpec | None = None,
    ) -> BulkReport:
        """Send a whole batch and return a ``BulkReport`` (counts by kind, failed items).

        ``on_outcome`` is called with every outcome as it arrives (e.g. for progress), one
        call at a time (an async one is awaited before the next starts).  If it raises,
        the batch stops and the exception propagates.  The report keeps the first
        ``keep_failures`` failed outcomes and counts the rest.  ``ordered`` and
        ``on_failure`` are as in ``send_many``.

        ``journal="jobs/batch7.journal"`` (or ``"redis://host/0?job=batch7"``, or a
        store from ``opentrain_async.journal``) records every send durably before it
        starts, so a task retried after a crash sends nothing twice: what the journal
        has as delivered is reported again without a send, a send left open is read
        back first.  A second run of the same job while one is under way raises
        ``JobBusyError``; an unusable journal ``JobJournalError``.
        """
        return await run_batch(
            self._delivery.deliver,
            items,
            policy=self._pipeline.retry_policy,
            clock=self._time.monotonic,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            on_outcome=on_outcome,
            keep_failures=keep_failures,
            ordered=ordered,
            on_failure=on_failure,
            hooks=None if journal is None else self._journal(journal),
        )

    async def find_own_message(
        self, conversation_id: str, content: str, *, since: float
    ) -> Message | None:
        """Read the conversation back for a message of ours with this content.

        Matches a message from the viewer with exactly ``content``, created at or after
        ``since`` (a Unix timestamp: when the send began) less ``clock_skew``, and not
        already attributed to another send of this client.  Used to settle sends whose
        outcome is unknown, e.g. by a journal after a crash.  Raises
        ``DeliveryUnknownError`` when the conversation cannot be read back far enough.
        """
        validate_conversation_id(conversation_id)
        return await self._delivery.find_own_message(conversation_id, content, since=since)

    def claim_ids(self, message_ids: Container[str]) -> None:
        """Tell read-back that these message ids already belong to other sends.

        A journal of an earlier run passes the ids it recorded as delivered, so that a
        message is never credited to two inputs with the same conversation and text.
        The collection is consulted live, not copied: ids added to it later count too.
        """
        self._delivery.claimed.include(message_ids)

    @property
    def reconcile_delay(self) -> float:
        """Seconds a timed-out send is given to finish server-side before read-back."""
        return self._delivery.reconcile_delay

    @reconcile_delay.setter
    def reconcile_delay(self, value: float) -> None:
        self._delivery.reconcile_delay = value

    @property
    def clock_skew(self) -> float:
        """How far before a send began a message found by read-back may be stamped."""
        return self._delivery.clock_skew

    @clock_skew.setter
    def clock_skew(self, value: float) -> None:
        self._delivery.clock_skew = value

    @property
    def log_content(self) -> bool:
        """Whether message content may appear in DEBUG log records."""
        return self._delivery.log_content

    @log_content.setter
    def log_content(self, value: bool) -> None:
        self._delivery.log_content = value
