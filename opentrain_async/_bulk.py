"""Bulk sending: one outcome per input, lazily, at the pace the client allows.

``BulkSend`` is the iterator behind ``OpenTrainClient.send_many``.  ``concurrency`` workers
each pull one input, send it and put its outcome on a queue bounded to ``concurrency``;
a worker pulls again only once its outcome is queued, so inputs in flight plus outcomes
not yet consumed stay below ``2 * concurrency``, plus in order the inputs parked behind
an earlier input of their conversation (at most ``DEFAULT_PARKED + 16 * concurrency``):
memory is bounded for any input size, and a slow consumer slows the sending down.
``send_all`` runs the same workers but has them account for each outcome in its report
directly.  The workers live in ``_bulk_engine``, the outcomes and the report in
``_bulk_outcome``; this module is the surface and re-exports their names.

Nothing fails fast: invalid input, or a 403 or 409 about the message, is that input's
outcome and the rest go on.  A 429 under ``max_retry_after`` is never an outcome: the
input waits.  A failure that dooms every send of the token (``stops_engine``: 401, a 403
about the account or token) or a 429 above that cap (``quota_gone``: every later send
would meet it too) stops the sending: every later input, and every send still waiting
for the pacer, gets a ``NotAttemptedError`` outcome without a request.

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
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from types import TracebackType
from typing import Any

from ._bulk_engine import _END, CallerHook, SendHooks, Sink, _Engine, order_chains
from ._bulk_outcome import (
    ACCOUNT_REASONS,
    DEFAULT_KEEP_FAILURES,
    OUTCOME_KINDS,
    BeforeSend,
    BulkReport,
    Deliver,
    OutcomeKind,
    SendItem,
    SendOutcome,
    check_items,
    normalize_item,
    outcome_kind,
    quota_gone,
    stops_engine,
)
from ._errors import (
    ConfigurationError,
)
from ._order import OnFailure
from ._retry import RetryPolicy
from ._validation import check_callback, check_flag, check_option
from ._waiters import Waiters

__all__ = [
    "ACCOUNT_REASONS",
    "DEFAULT_KEEP_FAILURES",
    "OUTCOME_KINDS",
    "BeforeSend",
    "BulkReport",
    "BulkSend",
    "Deliver",
    "OnFailure",
    "OutcomeKind",
    "SendHooks",
    "SendItem",
    "SendOutcome",
    "Sink",
    "normalize_item",
    "order_chains",
    "outcome_kind",
    "quota_gone",
    "run_batch",
    "stops_engine",
]

LEAVE_GRACE = 5.0
"""Seconds sends on the wire get to finish when a ``send_many`` loop is left early."""


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
        before_send: Callable[[Any], Awaitable[None] | None] | None = None,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        hooks: SendHooks | None = None,
    ) -> None:
        check_option(concurrency, "concurrency", minimum=1, integer=True)
        check_option(grace, "grace", minimum=0, unit=" seconds", infinite=True)
        check_flag(reconcile, "reconcile")
        check_callback(before_send, "before_send")
        check_items(items)
        self._outcomes = _Outcomes(concurrency)
        if before_send is not None:
            if hooks is not None:
                raise ConfigurationError("pass before_send= or journal=, not both")
            hooks = CallerHook(before_send)
        self._hooks = hooks
        self._opening = asyncio.Lock()
        self._closing: asyncio.Future[None] | None = None
        """``aclose``'s work, once started: every later call waits for it."""
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
            await self._raise_fatal()
            raise StopAsyncIteration
        hooks = self._hooks
        if hooks is not None and not engine.started:
            async with self._opening:  # two consumers at the start: the journal opens once
                await hooks.open()  # taken over before the first send (or raised)
        engine.start()
        try:
            outcome = await self._outcomes.get()
        except BaseException:
            self._cut_off()
            raise
        if outcome is _END:
            await self._raise_fatal()
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
            engine = self._engine
            self._cut_off()  # cancelled: stop now, every pulled input still accounted for
            await engine.aclose()
            engine.unreported.extend(engine.drain_parked())
            if self._hooks is not None and engine.started:
                await self._hooks.close()
            return
        await self.aclose()

    async def _raise_fatal(self) -> None:
        """A worker ended by a ``BaseException`` (not an outcome, not a cancel): the
        journal released, the loop gets it (once)."""
        try:
            self._engine.raise_fatal()
        except BaseException:
            if self._hooks is not None:
                with contextlib.suppress(Exception):  # the worker's exception is raised
                    await self._hooks.close()
            raise

    def _cut_off(self) -> None:
        """Stop at once (no grace), but as a left loop: the outcomes the loop has not
        taken, and each send cut off on the wire (``delivery_unknown``, as the workers
        wind down), go to ``unreported`` rather than nowhere."""
        engine = self._engine
        if not engine.stopped:
            engine.leave()
            engine.unreported.extend(self._outcomes.take_all())
        engine.cancel()

    async def aclose(self, grace: float | None = None) -> None:
        """Stop pulling input; sends already on the wire get ``grace`` seconds (default:
        the ``grace`` given to ``send_many``) to finish, no new send starts, then what
        is left is cancelled.  Returns once every worker has stopped; what the loop
        did not see is in ``unreported``.  Called again meanwhile (another task, the
        ``async with`` ending), it waits for the first call's close: it returned at
        once, with sends on the wire and ``unreported`` not complete yet."""
        if self._closing is None:
            if self._engine.stopped:
                await self._raise_fatal()  # a loop left without seeing it: it gets it here
                return
            self._closing = asyncio.ensure_future(self._close(grace))
        await asyncio.shield(self._closing)

    async def _close(self, grace: float | None) -> None:
        engine = self._engine
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
    check_flag(reconcile, "reconcile")
    check_callback(on_outcome, "on_outcome")
    check_items(items)
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
        except Exception:
            await hooks.close()
            raise
        except BaseException:  # cancelled (or stopped): that is what the caller gets, not
            with contextlib.suppress(Exception):  # the record it cut short, failing close
                await hooks.close()
            raise
        await hooks.close()
    report.elapsed = clock() - started
    return report


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
