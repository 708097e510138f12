"""Bulk sending: one outcome per input, lazily, at the pace the client allows.

``BulkSend`` is the engine behind ``OpenTrainClient.send_many``.  ``concurrency`` workers
each pull one input, send it and put its outcome on a queue bounded to ``concurrency``;
a worker pulls again only once its outcome is queued, so inputs in flight plus outcomes
not yet consumed stay below ``2 * concurrency`` (memory is O(concurrency) for any
input size) and a slow consumer slows the sending down.  Nothing
fails fast: invalid input, a 403, a 409 or an exhausted retry budget is that input's
outcome and the rest go on.  Leaving the loop (``break``, an exception, cancellation)
stops the workers: with ``async with`` (or ``aclose()``) no send starts after the loop
ended.  A plain ``async for ... break`` gets the same as soon as the iterator is
dropped, which is at once unless something else still references it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import Counter
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
from typing import TYPE_CHECKING, Any

import attrs

from ._errors import (
    APIConnectionError,
    APIError,
    DeliveryUnknownError,
    InvalidRequestError,
    OpenTrainError,
)
from ._models import Message, OutgoingMessage
from ._validation import validate_content, validate_conversation_id

if TYPE_CHECKING:
    from ._client import OpenTrainClient

__all__ = ["BulkReport", "BulkSend", "SendItem", "SendOutcome", "normalize_item", "outcome_kind"]

SendItem = tuple[str, str] | Mapping[str, Any] | OutgoingMessage
"""What ``send_many`` accepts per input: a ``(conversation_id, content)`` tuple, a mapping
with ``conversationId``/``content`` (and optional ``key``), or an ``OutgoingMessage``."""


@attrs.frozen
class SendOutcome:
    """The one outcome of one input: ``message`` when ``ok``, ``error`` otherwise."""

    index: int
    """Position of the input in the iterable, from 0."""
    item: Any
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
    def kind(self) -> str:
        """``sent``, or a short name for the failure (see ``outcome_kind``)."""
        return outcome_kind(self.error)


def outcome_kind(error: OpenTrainError | None) -> str:
    """Classify an outcome for reports: ``sent``, ``invalid``, ``delivery_unknown``,
    the server's ``details.reason`` (``read_only_conversation``...), or its code."""
    if error is None:
        return "sent"
    if isinstance(error, InvalidRequestError):
        return "invalid"
    if isinstance(error, DeliveryUnknownError):
        return "delivery_unknown"
    if isinstance(error, APIError):
        if error.reason:
            return error.reason
        return (error.code or f"http_{error.status}").lower()
    if isinstance(error, APIConnectionError):
        return "connection_error"
    return "error"


def normalize_item(item: Any) -> OutgoingMessage:
    """Turn one accepted input shape into a validated ``OutgoingMessage``."""
    if isinstance(item, OutgoingMessage):
        message = item
    elif isinstance(item, Mapping):
        key = item.get("key")
        conversation_id: Any = item.get("conversationId", item.get("conversation_id"))
        content: Any = item.get("content")
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


@attrs.define
class BulkReport:
    """Totals of a whole batch (from ``OpenTrainClient.send_all``)."""

    total: int = 0
    sent: int = 0
    counts: Counter[str] = attrs.Factory(Counter)
    """Outcomes by kind (``sent``, ``invalid``, ``read_only_conversation``, ...)."""
    failures: list[SendOutcome] = attrs.Factory(list)
    """Every outcome that was not delivered (inputs included, for a retry later)."""
    reconciled: int = 0
    """Deliveries confirmed by read-back after an unknown outcome."""
    elapsed: float = 0.0

    @property
    def failed(self) -> int:
        """Inputs that were not delivered."""
        return self.total - self.sent

    def add(self, outcome: SendOutcome) -> None:
        """Account for one outcome."""
        self.total += 1
        self.counts[outcome.kind] += 1
        if outcome.ok:
            self.sent += 1
            self.reconciled += outcome.reconciled
        else:
            self.failures.append(outcome)


class BulkSend(AsyncIterator[SendOutcome]):
    """Async iterator of ``SendOutcome``s, in completion order (see the module docstring).

    This handle is all the caller holds; the workers only reference the engine behind
    it, so dropping the handle (a plain ``break``) cancels them at once.
    """

    def __init__(
        self,
        client: OpenTrainClient,
        items: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int,
        reconcile: bool,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self._engine = _Engine(client, items, concurrency, reconcile)

    def __aiter__(self) -> BulkSend:
        return self

    async def __anext__(self) -> SendOutcome:
        return await self._engine.next_outcome()

    async def __aenter__(self) -> BulkSend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop pulling input and cancel in-flight sends; wait until they have stopped."""
        await self._engine.aclose()

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                engine.cancel()


class _Engine:
    """The workers and queues behind one ``BulkSend``."""

    def __init__(
        self,
        client: OpenTrainClient,
        items: Iterable[Any] | AsyncIterable[Any],
        concurrency: int,
        reconcile: bool,
    ) -> None:
        self._client = client
        self._async_items: AsyncIterator[Any] | None = None
        self._items: Iterator[Any] | None = None
        if isinstance(items, AsyncIterable):
            self._async_items = aiter(items)
        else:
            self._items = iter(items)
        self._concurrency = concurrency
        self._reconcile = reconcile
        self._pull_lock = asyncio.Lock()
        self._outcomes: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency)
        self._workers: list[asyncio.Task[None]] = []
        self._index = 0
        self._live_workers = 0
        self._input_error: BaseException | None = None
        self._exhausted = False
        self._closed = False

    async def next_outcome(self) -> SendOutcome:
        if self._closed:
            raise StopAsyncIteration
        if not self._workers:
            self._live_workers = self._concurrency
            self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        try:
            outcome = await self._outcomes.get()
        except BaseException:
            self.cancel()
            raise
        if outcome is _END:
            if self._input_error is not None and not self._closed:
                self._closed = True
                raise self._input_error
            self._closed = True
            raise StopAsyncIteration
        assert isinstance(outcome, SendOutcome)
        return outcome

    async def aclose(self) -> None:
        pending = self.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop everything now; returns the workers still winding down.

        A consumer waiting in ``next_outcome`` (say ``aclose()`` was called from another
        task) is woken and sees the end of the stream.
        """
        self._closed = True
        self._exhausted = True
        for task in self._workers:
            task.cancel()
        while not self._outcomes.empty():
            self._outcomes.get_nowait()
        self._outcomes.put_nowait(_END)
        return [t for t in self._workers if not t.done()]

    async def _next_item(self) -> Any:
        if self._exhausted:
            return _END
        try:
            if self._async_items is None:
                # A plain next() cannot be interleaved with another worker's: no lock.
                assert self._items is not None
                return next(self._items)
            async with self._pull_lock:  # an async generator must not be re-entered
                if self._exhausted:
                    return _END
                return await self._async_items.__anext__()
        except (StopIteration, StopAsyncIteration):
            self._exhausted = True
        except Exception as exc:  # the caller's iterable failed: stop, report it last
            self._exhausted = True
            self._input_error = exc
        return _END

    async def _work(self) -> None:
        try:
            while True:
                item = await self._next_item()
                if item is _END:
                    break
                index = self._index
                self._index += 1
                outcome = await self._client._send_outcome(index, item, self._reconcile)
                await self._outcomes.put(outcome)
        finally:
            self._live_workers -= 1
        if self._live_workers == 0:  # the last worker out closes the stream
            await self._outcomes.put(_END)


async def run_batch(
    outcomes: BulkSend, on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None
) -> BulkReport:
    """Drain ``outcomes`` into a ``BulkReport``, calling ``on_outcome`` for each."""
    report = BulkReport()
    started = time.monotonic()
    async with outcomes:
        async for outcome in outcomes:
            report.add(outcome)
            if on_outcome is not None:
                result = on_outcome(outcome)
                if inspect.isawaitable(result):
                    await result
    report.elapsed = time.monotonic() - started
    return report
