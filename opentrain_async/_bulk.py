"""Bulk sending: one outcome per input, lazily, at the pace the client allows.

``BulkSend`` is the engine behind ``OpenTrainClient.send_many``.  ``concurrency`` workers
each pull one input, send it and put its outcome on a queue bounded to ``concurrency``;
a worker pulls again only once its outcome is queued, so inputs in flight plus outcomes
not yet consumed stay below ``2 * concurrency``, plus in order the inputs parked behind
an earlier input of their conversation (at most ``DEFAULT_PARKED + 16 * concurrency``):
memory is bounded for any input size, and a slow consumer slows the sending down.
``send_all`` runs the same workers but has them account for each outcome in its report
directly.

Nothing fails fast: invalid input, a 403 or 409 about the message, or a 429 hint above
``max_retry_after`` is that input's outcome and the rest go on.  A 429 under that cap
is never an outcome: the input waits.  A failure that dooms every send of the token
(``stops_engine``: 401, a 403 about the account or token) stops the sending: every later
input gets a ``NotAttemptedError`` outcome without a request.

In order (the default): within one conversation, input k+1 is sent only once input k
has its outcome; conversations stay concurrent (``_order``).  When an input fails for
good, the rest of its conversation is not sent (``BlockedByEarlierFailureError``) unless
``on_failure="continue"``.  ``ordered=False`` sends every input as soon as a worker is free.

Leaving the loop early under ``async with`` (``break``, an exception) or with
``aclose()``: no input is pulled and no send starts (the engine goes with each send
as its ``gate``, which the request pipeline asks before the send), sends on the wire get
a grace to finish, and the outcomes the loop did not see are kept in ``unreported``.
Cancellation stops at once.  A plain ``async for ... break`` cancels as soon as the
iterator is dropped, which is at once unless something else still references it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import Counter, deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import Any, Literal, Protocol, get_args

import attrs

import opentrain_async._telemetry as _telemetry

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
from ._order import DEFAULT_PARKED, Chains, OnFailure, Parked, blocked_error
from ._retry import RetryPolicy
from ._validation import check_option, validate_content, validate_conversation_id
from ._waiters import Waiters

__all__ = [
    "OUTCOME_KINDS",
    "BeforeSend",
    "BulkReport",
    "BulkSend",
    "Deliver",
    "OnFailure",
    "OutcomeKind",
    "SendItem",
    "SendOutcome",
    "Sink",
    "normalize_item",
    "outcome_kind",
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
``OpenTrainError``.  ``gate`` is the engine: once its ``closing`` is set no new send may
start.  ``paced``: the input's first 429 with a rounded one-second hint is left to the
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


def normalize_item(item: Any) -> OutgoingMessage:
    """Turn one accepted input shape into a validated ``OutgoingMessage``."""
    if isinstance(item, OutgoingMessage):
        message = item
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


_END = object()

LEAVE_GRACE = 5.0
"""Seconds sends on the wire get to finish when a ``send_many`` loop is left early."""

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


class BulkSend(AsyncIterator[SendOutcome]):
    """Async iterator of ``SendOutcome``s, in completion order (see the module docstring).

    This handle is all the caller holds; the workers only reference the engine behind
    it, so dropping the handle (a plain ``break``) cancels them at once.
    """

    def __init__(
        self,
        deliver: Deliver,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        policy: RetryPolicy,
        concurrency: int,
        reconcile: bool,
        grace: float = LEAVE_GRACE,
        before_send: Callable[[Any], Awaitable[None]] | None = None,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        hooks: SendHooks | None = None,
    ) -> None:
        check_option(concurrency, "concurrency", minimum=1, integer=True)
        check_option(grace, "grace", minimum=0, unit=" seconds", infinite=True)
        self._outcomes = _Outcomes(concurrency)
        if before_send is not None:
            if hooks is not None:
                raise ConfigurationError("pass before_send= or journal=, not both")
            hooks = _CallerHook(before_send)
        self._hooks = hooks
        self._engine = _Engine(
            deliver,
            policy,
            items,
            concurrency,
            reconcile,
            self._outcomes,
            chains=order_chains(ordered, on_failure, concurrency),
            hooks=hooks,
        )
        self.grace = grace

    def stop_conversation(self, conversation_id: str, *, key: str | None = None) -> None:
        """In order: end ``conversation_id`` before its inputs are reached, as if an
        earlier input of it (``key``) had failed for good: each of its inputs gets a
        ``BlockedByEarlierFailureError`` outcome.  For a resumed job whose journal says
        an earlier input of the conversation failed."""
        chains = self._engine.chains
        if chains is not None and chains.on_failure == "stop":
            chains.stop(conversation_id, None, key, None)

    @property
    def unreported(self) -> list[SendOutcome]:
        """After the loop was left early: the outcomes it never saw, one per input that
        was pulled and not reported (delivered during the grace, refused, never sent
        because the loop had ended: ``NotAttemptedError``, or cut off when the grace ran
        out: ``DeliveryUnknownError``)."""
        return self._engine.unreported

    def __aiter__(self) -> BulkSend:
        return self

    async def __anext__(self) -> SendOutcome:
        engine = self._engine
        if engine.stopped:
            raise StopAsyncIteration
        hooks = self._hooks
        if hooks is not None and not engine.started:
            await hooks.open()  # a journal taken over before the first send (or raised)
        engine.start()
        try:
            outcome = await self._outcomes.get()
        except BaseException:
            engine.cancel()
            raise
        if outcome is _END:
            stopped_before = engine.stopped
            engine.stopped = True
            self._outcomes.put_nowait(_END)  # any other consumer sees the end too
            if hooks is not None and not stopped_before:
                await hooks.close()
            if not stopped_before:  # after aclose() the stream just ends
                engine.raise_input_error()
            raise StopAsyncIteration
        assert isinstance(outcome, SendOutcome)
        return outcome

    async def __aenter__(self) -> BulkSend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            await self._engine.aclose()  # cancelled: stop now
            if self._hooks is not None and self._engine.started:
                await self._hooks.close()
            return
        await self.aclose()

    async def aclose(self, grace: float | None = None) -> None:
        """Stop pulling input; sends already on the wire get ``grace`` seconds (default:
        the ``grace`` given to ``send_many``) to finish, no new send starts, then what
        is left is cancelled.  Returns once every worker has stopped; what the loop
        did not see is in ``unreported``."""
        engine = self._engine
        if engine.stopped:
            return
        engine.leave()
        outcomes = self._outcomes
        engine.unreported.extend(outcomes.take_all())
        outcomes.unbounded()  # workers waiting for room hand their outcome over
        outcomes.put_nowait(_END)  # a consumer waiting elsewhere sees the end now
        await engine.finish(self.grace if grace is None else grace)
        engine.unreported.extend(outcomes.take_all())
        await engine.aclose()
        engine.unreported.extend(engine.drain_parked())
        if self._hooks is not None and engine.started:
            await self._hooks.close()

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                engine.cancel()


class _Outcomes:
    """``send_many``'s sink: the bounded FIFO from the workers to the caller's loop.

    asyncio.Queue does task accounting (``join``) that nothing here uses, at a dozen
    calls per outcome; this keeps only the bound and the waiting.
    """

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Any] = deque()
        self._maxsize = maxsize
        self._getters: Waiters[None] = Waiters()
        self._putters: Waiters[None] = Waiters()

    def clear(self) -> None:
        """Drop every item; any worker waiting for room may go on."""
        self._items.clear()
        self._putters.wake_all(None)

    def take_all(self) -> list[Any]:
        """Remove and return every item (the end marker excluded)."""
        items = [i for i in self._items if i is not _END]
        self._items.clear()
        return items

    def unbounded(self) -> None:
        """Lift the bound, letting every waiting worker put."""
        self._maxsize = 1 << 62
        self._putters.wake_all(None)

    def close(self, discard: bool) -> None:
        """End the stream (the engine's sink): after what is queued, or at once."""
        if discard:
            self.clear()
        self.put_nowait(_END)

    def put_nowait(self, item: Any) -> None:
        """Append regardless of the bound (for the end marker) and wake a consumer."""
        self._items.append(item)
        if self._getters:
            self._getters.wake(None)

    async def put(self, item: Any) -> None:
        """Append once there is room, waking a consumer."""
        while len(self._items) >= self._maxsize:
            await self._putters.wait()
        self._items.append(item)
        if self._getters:
            self._getters.wake(None)

    async def get(self) -> Any:
        """Take the oldest item, waiting for one; frees room for a worker."""
        items = self._items
        while not items:
            await self._getters.wait()
        item = items.popleft()
        if self._putters:
            self._putters.wake(None)
        if items and self._getters:  # another consumer may take the next one
            self._getters.wake(None)
        return item


class Sink(Protocol):
    """Where the engine hands every outcome, as aiometer's ``run_on_each`` sends each
    result to a stream: ``send_many``'s bounded queue, or ``send_all``'s report."""

    def put(self, outcome: SendOutcome) -> Awaitable[None] | None:
        """Take one outcome.  An awaitable returned is awaited by the worker before it
        pulls its next input (a full queue, an async callback's turn); if taking the
        outcome fails, the engine stops and ``run`` raises that failure."""

    def close(self, discard: bool) -> None:
        """No more outcomes: every worker has stopped, or the engine was stopped
        (``discard``: drop what was not taken yet)."""


class _Engine:
    """The workers behind one ``BulkSend`` or ``send_all``: one engine, two sinks.

    Each worker pulls an input, turns it into exactly one outcome and hands it to the
    ``sink``: the queue a ``BulkSend`` reads, or ``send_all``'s report, which spares
    every outcome a trip through a queue and a consumer task.  Once ``leave`` was
    called, outcomes go to ``unreported`` instead.
    """

    def __init__(
        self,
        deliver: Deliver,
        policy: RetryPolicy,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        concurrency: int,
        reconcile: bool,
        sink: Sink,
        *,
        chains: Chains | None = None,
        hooks: SendHooks | None = None,
    ) -> None:
        self._deliver = deliver
        self._policy = policy
        self._before_send = None if hooks is None else hooks.before_send
        self._after = None if hooks is None or isinstance(hooks, _CallerHook) else hooks.after
        self._settled: Callable[[int, Any], Message | None] | None = getattr(hooks, "settled", None)
        """A journal's answer for an input about to be reported blocked: delivered by an
        earlier run (then that is its outcome, not "not sent")."""
        self._chains = chains
        self.chains = chains
        """The per-conversation chains in order (None: ``ordered=False``)."""
        self._async_items: AsyncIterator[Any] | None = None
        self._items: Iterator[Any] | None = None
        if isinstance(items, AsyncIterable):
            self._async_items = aiter(items)
        else:
            self._items = iter(items)
        self._concurrency = concurrency
        self._reconcile = reconcile
        self._sink = sink
        self._pull_lock = asyncio.Lock()
        self._workers: list[asyncio.Task[None]] = []
        self._index = 0
        self._live_workers = 0
        self._input_error: BaseException | None = None
        self._sink_error: BaseException | None = None
        self._exhausted = False
        self.stopped = False
        """Stopped (or ended): a consumer sees the end, no worker hands on an outcome."""
        self._halt: OpenTrainError | None = None
        """Set by the first failure that dooms every later send (``stops_engine``)."""
        self.closing = False
        """The consumer left: no new send may start (the engine is the ``gate`` passed
        with each send; the request pipeline checks it); outcomes go to ``unreported``."""
        self.unreported: list[SendOutcome] = []

    @property
    def started(self) -> bool:
        return bool(self._workers)

    def start(self) -> None:
        if not self._workers:
            self._live_workers = self._concurrency
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def run(self) -> None:
        """Until every input's outcome is in the sink (``send_all``); raises what the
        sink raised, else what the caller's iterable raised."""
        self.start()
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        except BaseException:  # cancelled: stop the workers and wait for them
            await self.aclose()
            raise
        self.stopped = True
        if self._sink_error is not None:
            raise self._sink_error
        self.raise_input_error()

    def raise_input_error(self) -> None:
        """Raise (once) what the caller's iterable raised, if it did."""
        error, self._input_error = self._input_error, None
        if error is not None:
            raise error

    async def aclose(self) -> None:
        pending = self.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def leave(self) -> None:
        """The consumer left: no new input, no new send; outcomes go to ``unreported``."""
        self.closing = True
        self.stopped = True  # the stream just ends for every consumer
        self._exhausted = True
        if self._chains is not None:
            self._chains.wake()

    async def finish(self, grace: float) -> None:
        """Give the sends under way ``grace`` seconds to finish, then stop the rest."""
        pending = [t for t in self._workers if not t.done()]
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop everything now; returns the workers still winding down.

        The sink is closed, dropping what it holds: a consumer waiting on it (say
        ``aclose()`` was called from another task) is woken and sees the end.
        """
        self.stopped = True
        self._exhausted = True
        for task in self._workers:
            task.cancel()
        self._sink.close(discard=True)
        return [t for t in self._workers if not t.done()]

    def _not_attempted(self) -> NotAttemptedError:
        cause = self._halt
        assert cause is not None
        first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        return NotAttemptedError(
            f"not attempted: an earlier send showed that no send can succeed ({first})",
            cause=cause,
        )

    async def _next_async_item(self) -> Any:
        assert self._async_items is not None
        async with self._pull_lock:  # an async generator must not be re-entered
            if self._exhausted:
                return _END
            try:
                return await self._async_items.__anext__()
            except StopAsyncIteration:
                self._exhausted = True
            except Exception as exc:  # the caller's iterable failed: stop, report it last
                self._exhausted = True
                self._input_error = exc
            except asyncio.CancelledError as exc:
                if self.stopped:  # the engine is stopping this worker
                    raise
                # The iterable itself raised CancelledError: end the stream with it
                # rather than lose the worker (and hang the consumer).
                self._exhausted = True
                self._input_error = exc
        return _END

    async def _work(self) -> None:
        """One worker.  Kept in one frame with the outcome logic: the send path is
        re-entered through every coroutine layer each time aiohttp resumes it.

        In order (``chains``), a worker that pulls an input of a conversation with an
        input in progress parks it and pulls again; the worker that finishes a
        conversation's input goes on with the next one of its chain (``held``)."""
        deliver = self._deliver
        before_send = self._before_send
        after = self._after
        policy = self._policy
        reconcile = self._reconcile
        items = self._items
        chains = self._chains
        waits = 0  # the engine's own waits for the current input's 429s
        held: Parked | None = None  # the next input of the conversation this worker holds
        content: Any
        try:
            while True:
                if held is not None:
                    index, item, key, conversation_id, content = held
                    held = None
                else:
                    if self._exhausted:
                        break
                    if chains is not None and chains.full:
                        await chains.room()  # a chain must move on before more is read
                        continue
                    if items is not None:
                        # A plain next() cannot be interleaved with another worker's: no lock.
                        try:
                            item = next(items)
                        except StopIteration:
                            self._exhausted = True
                            break
                        except Exception as exc:  # the caller's iterable failed
                            self._exhausted = True
                            self._input_error = exc
                            break
                    else:
                        item = await self._next_async_item()
                        if item is _END:
                            break
                    index = self._index
                    self._index += 1
                    key = None
                    conversation_id = None
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
                        if chains is None or conversation_id is None:
                            conversation_id = None if chains is None else _conversation_of(item)
                        content = exc  # its outcome, in its turn
                    if chains is not None and conversation_id is not None:
                        if chains.failed:
                            blocked = chains.stopped(conversation_id)
                            if blocked is not None:
                                await self._hand(self._blocked(index, item, key, blocked))
                                continue
                        if not chains.enter((index, item, key, conversation_id, content)):
                            continue  # parked behind an earlier input of its conversation
                span = _telemetry.message_start()  # this input's span; its outcome is counted
                try:
                    if content.__class__ is not str:
                        raise content  # invalid: found when it was pulled
                    assert conversation_id is not None  # valid content, valid conversation
                    if self._halt is not None:
                        raise self._not_attempted()
                    settled = None if before_send is None else await before_send(index, item)
                    if settled is not None:  # a journal knows its outcome: nothing to send
                        message, reconciled = settled
                    else:
                        waits = 0  # this input's engine waits: after one, its retries are late
                        while True:
                            try:
                                message, reconciled = await deliver(
                                    conversation_id, content, reconcile, self, waits == 0
                                )
                                break
                            except RateLimitError as exc:
                                # 429 means "later", never "no": the input waits while the
                                # hints stay under max_retry_after, however many it takes.
                                # The attempt that failed is the retry budget's last plus
                                # these waits (see compute_wait: only a first 429 with a
                                # rounded one-second hint is left to the pacer).
                                if policy.retry_reason(exc, idempotent=False) is None:
                                    raise
                                waits += 1
                                attempt = policy.max_retries + waits
                                await policy.sleep(policy.compute_wait(exc, attempt, paced=True))
                                if self._halt is not None:
                                    raise self._not_attempted() from self._halt
                except OpenTrainError as exc:
                    if self._halt is None and (
                        stops_engine(exc) or quota_gone(exc, policy.max_retry_after)
                    ):
                        self._halt = exc  # no further sends: every later input is not attempted
                    outcome = SendOutcome(index, item, None, exc, key)
                except Exception as exc:  # a bug must not lose the input: it is its outcome
                    error = OpenTrainError(f"unexpected {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    outcome = SendOutcome(index, item, None, error, key)
                except asyncio.CancelledError:
                    if self.closing:  # the grace ran out with this send under way
                        unknown = DeliveryUnknownError(
                            "the send_many loop was left and this send did not finish within "
                            "the grace; it may or may not have been delivered",
                            cause=APIConnectionError("cancelled after the grace"),
                        )
                        self.unreported.append(SendOutcome(index, item, None, unknown, key))
                    raise
                else:
                    outcome = SendOutcome(index, item, message, None, key, reconciled)
                _telemetry.outcome(span, outcome)
                if after is not None:
                    await after(outcome)
                if chains is None or conversation_id is None:
                    await self._hand(outcome)
                    continue
                failure = outcome.error
                if self.closing:  # what waits in this chain will not be sent
                    self.unreported.append(outcome)
                    for p in chains.release(conversation_id):
                        self.unreported.append(SendOutcome(p[0], p[1], None, _left(), p[2]))
                    continue
                if (
                    failure is None
                    or chains.on_failure == "continue"
                    or self._halt is not None  # no send can succeed: the rest not attempted
                    or isinstance(failure, NotAttemptedError)
                ):
                    await self._hand(outcome)
                    held = chains.next(conversation_id)
                    continue
                # Failed for good: the rest of this conversation is not sent.  It stays
                # held until every input parked behind has its outcome, so the stream
                # shows them in order.
                await self._hand(outcome)
                while True:
                    rest = chains.take(conversation_id)
                    if not rest:
                        break
                    for p in rest:
                        blocked = blocked_error(conversation_id, index, key, failure)
                        await self._hand(self._blocked(p[0], p[1], p[2], blocked))
                chains.fail(conversation_id, index, key, failure)
        except _SinkFailed:
            return
        finally:
            self._live_workers -= 1
            if self._live_workers == 0 and not self.stopped:
                self._sink.close(discard=False)  # the last one closes the sink

    def _blocked(
        self, index: int, item: Any, key: str | None, error: BlockedByEarlierFailureError
    ) -> SendOutcome:
        """An input not sent because its conversation stopped: blocked, unless the
        journal says an earlier run delivered it (a run with ``on_failure="continue"``
        or ``ordered=False``); "not sent" would then invite sending it again."""
        message = None if self._settled is None else self._settled(index, item)
        if message is not None:
            return SendOutcome(index, item, message, None, key)
        return SendOutcome(index, item, None, error, key)

    async def _hand(self, outcome: SendOutcome) -> None:
        """Hand one outcome to the sink (to ``unreported`` once the consumer left).  If
        the sink fails, everything stops and ``_SinkFailed`` ends the worker."""
        if self.closing:
            self.unreported.append(outcome)
            return
        try:
            result = self._sink.put(outcome)
            if result is not None:
                await result
        except BaseException as exc:  # the sink failed (a callback): stop everything
            if self.stopped:  # this worker was cancelled by the engine itself
                raise
            self._sink_error = exc
            self.cancel()
            if isinstance(exc, Exception):
                raise _SinkFailed from None
            raise

    def drain_parked(self) -> list[SendOutcome]:
        """Outcomes for inputs still parked once the workers stopped: never sent."""
        if self._chains is None:
            return []
        return [SendOutcome(p[0], p[1], None, _left(), p[2]) for p in self._chains.drain()]


class _SinkFailed(Exception):
    """The sink raised an ``Exception``: the worker ends (``run`` raises it)."""


def _left() -> NotAttemptedError:
    return NotAttemptedError(
        "not sent: the loop over send_many's outcomes ended before this input's turn "
        "(an earlier input of its conversation was still being sent)"
    )


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


async def run_batch(
    deliver: Deliver,
    items: Iterable[SendItem] | AsyncIterable[SendItem],
    *,
    policy: RetryPolicy,
    concurrency: int,
    reconcile: bool,
    on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None,
    keep_failures: int = DEFAULT_KEEP_FAILURES,
    clock: Callable[[], float] = time.monotonic,
    ordered: bool = True,
    on_failure: OnFailure = "stop",
    hooks: SendHooks | None = None,
) -> BulkReport:
    """Send a whole batch into a ``BulkReport``, calling ``on_outcome`` for each outcome.

    The engine's sink is the report itself (no queue, no consumer task).  Calls
    of ``on_outcome`` never overlap, async ones included.  If it raises, the batch stops
    and the exception propagates.
    """
    check_option(concurrency, "concurrency", minimum=1, integer=True)
    check_option(keep_failures, "keep_failures", minimum=0, integer=True)
    report = BulkReport(keep_failures=keep_failures)
    started = clock()
    sink = _ReportSink(report, on_outcome)
    chains = order_chains(ordered, on_failure, concurrency)
    engine = _Engine(
        deliver, policy, items, concurrency, reconcile, sink, chains=chains, hooks=hooks
    )
    if hooks is None:
        await engine.run()
    else:
        await hooks.open()
        try:
            await engine.run()
        finally:
            await hooks.close()
    report.elapsed = clock() - started
    return report


def order_chains(ordered: bool, on_failure: OnFailure, concurrency: int) -> Chains | None:
    """The chains that keep each conversation in order (None: ``ordered=False``)."""
    if on_failure not in ("stop", "continue"):
        raise ConfigurationError(f"on_failure must be 'stop' or 'continue', got {on_failure!r}")
    if not isinstance(ordered, bool):
        raise ConfigurationError(f"ordered must be True or False, got {ordered!r}")
    if not ordered:
        return None
    return Chains(DEFAULT_PARKED + 16 * concurrency, on_failure)


class SendHooks(Protocol):
    """What a journal does around a bulk run (``journal=``): taken over before the
    first send, consulted right before each send, told each outcome before anyone else
    sees it, released at the end."""

    async def open(self) -> None:
        """Take the journal over; raise (an ``OpenTrainError``) to send nothing."""

    async def before_send(self, index: int, item: Any) -> tuple[Message, bool] | None:
        """See ``BeforeSend``."""

    async def after(self, outcome: SendOutcome) -> None:
        """Record an outcome (not awaited for durability: the next run reads it back)."""

    async def close(self) -> None:
        """Release the journal (idempotent)."""


class _CallerHook:
    """``send_many(before_send=)``: the caller's callable, awaited with the item only."""

    def __init__(self, before_send: Callable[[Any], Awaitable[None]]) -> None:
        self._call = before_send

    async def open(self) -> None:
        return None

    async def before_send(self, index: int, item: Any) -> tuple[Message, bool] | None:
        await self._call(item)
        return None

    async def after(self, outcome: SendOutcome) -> None:
        return None

    async def close(self) -> None:
        return None


class _ReportSink:
    """``send_all``'s sink: each outcome into the report, then to ``on_outcome``."""

    def __init__(
        self,
        report: BulkReport,
        on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None,
    ) -> None:
        self._add = report.add
        self._callback = on_outcome
        self._turn = asyncio.Lock()

    def put(self, outcome: SendOutcome) -> Awaitable[None] | None:
        self._add(outcome)
        callback = self._callback
        if callback is None:
            return None
        result = callback(outcome)
        if result is not None and inspect.isawaitable(result):
            return _await_in_turn(self._turn, result)
        return None

    def close(self, discard: bool) -> None:
        """Nothing to do: the report is complete when ``run`` returns."""


async def _await_in_turn(turn: asyncio.Lock, result: Awaitable[None]) -> None:
    """Await an async ``on_outcome`` once no other call is running: callbacks see the
    outcomes one at a time, as they would from an ``async for`` loop."""
    try:
        await turn.acquire()
    except BaseException:
        if inspect.iscoroutine(result):
            result.close()  # cancelled before its turn: never started, never awaited
        raise
    try:
        await result
    finally:
        turn.release()
