"""The workers behind ``send_many`` and ``send_all``: one engine, two sinks.

Each worker pulls an input, turns it into exactly one outcome and hands it to a
``Sink``; in order, an input waits for the earlier inputs of its conversation
(``_order``).  The engine gets a ``Deliver`` callable and its hooks as parameters:
it imports neither the request pipeline nor the pacer (tests/test_import_graph.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, cast

import opentrain_async._telemetry as _telemetry

from ._bulk_outcome import (
    BeforeSend,
    Deliver,
    Pulled,
    SendItem,
    SendOutcome,
    parse_input,
    quota_gone,
    stops_engine,
)
from ._errors import (
    APIConnectionError,
    BlockedByEarlierFailureError,
    DeliveryUnknownError,
    NotAttemptedError,
    OpenTrainError,
    RateLimitError,
)
from ._hooks import CallerHook
from ._models import Message
from ._order import Chains, Parked, blocked_error, order_chains
from ._retry import RetryPolicy

__all__ = ["CallerHook", "SendHooks", "Sink", "order_chains"]

_END = object()
"""The end-of-stream marker (an input source or a sink is exhausted)."""


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
        self._after = None if hooks is None or isinstance(hooks, CallerHook) else hooks.after
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
        self._fatal: BaseException | None = None
        """A ``BaseException`` (not a cancel) of a hook or a send: not an input's outcome,
        it stops everything and reaches the caller (it was lost with its input)."""
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
            # wait, not gather: a cancelled gather cancels the workers before ``stopped``
            # is set, and a worker in a hook would take that for the hook's (``_before``).
            await asyncio.wait(self._workers)
        except BaseException:  # cancelled: stop the workers and wait for them
            await self.aclose()
            raise
        await asyncio.gather(*self._workers, return_exceptions=True)  # all done: retrieved
        self.stopped = True
        self.raise_fatal()
        if self._sink_error is not None:
            raise self._sink_error
        self.raise_input_error()

    def raise_fatal(self) -> None:
        """Raise (once) the ``BaseException`` that ended a worker, if one did."""
        fatal, self._fatal = self._fatal, None
        if fatal is not None:
            raise fatal

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

    @property
    def refusal(self) -> NotAttemptedError | None:
        """``SendGate.refusal``: past ``leave`` or a halt none starts (the sends pulled
        before a halt each drew its refusal: tests/test_bulk_quota_gone_in_flight.py)."""
        if self.closing:
            return NotAttemptedError("not sent: the send_many loop was left before it started")
        return None if self._halt is None else self._not_attempted()

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
        """One worker: pull an input, settle it into one outcome, pass that on.

        In order (``chains``), a worker that pulls an input of a conversation with an
        input in progress parks it and pulls again; the worker that finishes a
        conversation's input goes on with the next one of its chain (``held``).  The
        three steps cost ~1.3 us of CPU per input over one long frame (``python -m
        benchmarks.hot_path_split``), ~0.4% of a message's CPU unthrottled."""
        held: Parked | None = None  # the next input of the conversation this worker holds
        try:
            while True:
                if held is not None:
                    parked: Any = held
                else:
                    parked = await self._pull()
                    if parked is _END:
                        break
                    if parked is None:
                        continue  # parked behind its conversation, or reported blocked
                outcome = await self._settle(parked)
                held = await self._pass_on(parked, outcome)
        except _SinkFailed:
            return
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # not an input's outcome: stop, the caller gets it
            if self._fatal is None and not self.stopped:
                self._fatal = exc
            self.cancel()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise  # asyncio stops the loop with these at once
        finally:
            self._live_workers -= 1
            if self._live_workers == 0 and not self.stopped:
                self._sink.close(discard=False)  # the last one closes the sink

    async def _pull(self) -> Any:
        """The next input as a ``Parked`` tuple (an invalid one carries its error as its
        content: its outcome, in its turn); ``_END`` when there is none left; None when
        there is nothing to send now (parked, reported blocked, or the chains are full)."""
        if self._exhausted:
            return _END
        chains = self._chains
        if chains is not None and chains.full:
            await chains.room()  # a chain must move on before more is read
            return None
        item = self._next_item() if self._items is not None else await self._next_async_item()
        if item is _END:
            return _END
        index = self._index
        self._index += 1
        parked = parse_input(index, item, ordered=chains is not None)
        conversation_id = parked[3]
        if chains is None or conversation_id is None:
            return parked
        if chains.failed:
            blocked = chains.stopped(conversation_id)
            if blocked is not None:
                await self._hand(self._blocked(index, item, parked[2], blocked))
                return None
        return parked if chains.enter(cast(Parked, parked)) else None

    def _next_item(self) -> Any:
        """The next input of a plain iterable: a plain ``next()`` cannot be interleaved
        with another worker's, so no lock."""
        assert self._items is not None
        try:
            return next(self._items)
        except StopIteration:
            self._exhausted = True
        except Exception as exc:  # the caller's iterable failed: stop, report it last
            self._exhausted = True
            self._input_error = exc
        return _END

    async def _settle(self, parked: Pulled) -> SendOutcome:
        """Exactly one outcome for one input, as its message span.  A 429 means "later",
        never "no": the input waits while the hints stay under ``max_retry_after``."""
        index, item, key, conversation_id, content = parked
        policy = self._policy
        span = _telemetry.message_start()  # this input's span; its outcome is counted
        try:
            if content.__class__ is not str:
                raise content  # invalid: found when it was pulled
            assert conversation_id is not None  # valid content, valid conversation
            if self._halt is not None:
                raise self._not_attempted()
            before_send = self._before_send
            settled = None if before_send is None else await self._before(before_send, index, item)
            if settled is not None:  # a journal knows its outcome: nothing to send
                message, reconciled = settled
            else:
                waits = 0  # this input's engine waits: after one, its retries are late
                while True:
                    try:
                        if waits:
                            message, reconciled = await self._resend(
                                conversation_id, content, waits
                            )
                        else:
                            message, reconciled = await self._deliver(
                                conversation_id, content, self._reconcile, self, True
                            )
                        break
                    except RateLimitError as exc:
                        # The attempt that failed is the retry budget's last plus these
                        # waits (see resend_wait: a 429 with a rounded one-second hint,
                        # or none, is left to the pacer; exact hints get a floor).
                        if policy.retry_reason(exc, idempotent=False) is None:
                            raise
                        waits += 1
                        _telemetry.count("opentrain.retries")  # a wait before a retry
                        await policy.sleep(policy.resend_wait(exc, waits))
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
                self.unreported.append(SendOutcome(index, item, None, _cut_short(), key))
            _telemetry.message_end(span, self.unreported[-1].kind if self.closing else None)
            raise
        else:
            outcome = SendOutcome(index, item, message, None, key, reconciled)
        _telemetry.outcome(span, outcome)
        return outcome

    async def _before(
        self, before_send: BeforeSend, index: int, item: Any
    ) -> tuple[Message, bool] | None:
        """The hook before a send.  A ``CancelledError`` it raises while the engine runs
        is the hook's own (it awaited a cancelled future): that input's outcome, not the
        end of its worker.  Unless this worker's task was cancelled (``cancelling``, 3.11+;
        3.10 has only ``stopped``): ``asyncio.run`` ending cancels every task at once,
        this worker's before the engine's ``cancel``, and the hook's outcome was journaled."""
        try:
            return await before_send(index, item)
        except asyncio.CancelledError as exc:
            if self.stopped or getattr(asyncio.current_task(), "cancelling", int)():
                raise
            raise OpenTrainError(
                "not sent: before_send raised CancelledError (not a cancel of the send)"
            ) from exc

    async def _resend(self, conversation_id: str, content: str, waits: int) -> tuple[Message, bool]:
        """The input sent again after ``waits`` engine waits, each after a spent retry
        budget: its attempts are numbered on from those (telemetry, log records)."""
        with _telemetry.resent(waits * (self._policy.max_retries + 1)):
            return await self._deliver(conversation_id, content, self._reconcile, self, False)

    async def _pass_on(self, parked: Pulled, outcome: SendOutcome) -> Parked | None:
        """Record the outcome and hand it on; in order, returns the next input of its
        conversation for this worker to send (None: the conversation is free)."""
        if self._after is not None:
            await self._after(outcome)
        chains = self._chains
        index, _, key, conversation_id, _ = parked
        if chains is None or conversation_id is None:
            await self._hand(outcome)
            return None
        failure = outcome.error
        if self.closing:  # what waits in this chain will not be sent
            self.unreported.append(outcome)
            for p in chains.release(conversation_id):
                self.unreported.append(_telemetry.counted(_left(p)))
            return None
        await self._hand(outcome)
        if (
            failure is None
            or chains.on_failure == "continue"
            or self._halt is not None  # no send can succeed: the rest not attempted
            or isinstance(failure, NotAttemptedError)
        ):
            return chains.next(conversation_id)
        # Failed for good: the rest of this conversation is not sent.  It stays held
        # until every input parked behind has its outcome, so the stream shows them in
        # order.
        while True:
            rest = chains.take(conversation_id)
            if not rest:
                break
            for p in rest:
                blocked = blocked_error(conversation_id, index, key, failure)
                await self._hand(self._blocked(p[0], p[1], p[2], blocked))
        chains.fail(conversation_id, index, key, failure)
        return None

    def _blocked(
        self, index: int, item: Any, key: str | None, error: BlockedByEarlierFailureError
    ) -> SendOutcome:
        """An input not sent because its conversation stopped: blocked, unless the
        journal says an earlier run delivered it (a run with ``on_failure="continue"``
        or ``ordered=False``); "not sent" would then invite sending it again."""
        message = None if self._settled is None else self._settled(index, item)
        failure = error if message is None else None  # counted: it has no message span
        return _telemetry.counted(SendOutcome(index, item, message, failure, key))

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
                if self.closing:  # while waiting for room: the loop left, keep it
                    self.unreported.append(outcome)
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
        return [_telemetry.counted(_left(p)) for p in self._chains.drain()]


class _SinkFailed(Exception):
    """The sink raised an ``Exception``: the worker ends (``run`` raises it)."""


def _left(parked: tuple[Any, ...]) -> SendOutcome:
    """A parked input's outcome once the loop ended before its turn."""
    return SendOutcome(parked[0], parked[1], None, _never_sent(), parked[2])


def _never_sent() -> NotAttemptedError:
    return NotAttemptedError(
        "not sent: the loop over send_many's outcomes ended before this input's turn "
        "(an earlier input of its conversation was still being sent)"
    )


def _cut_short() -> DeliveryUnknownError:
    return DeliveryUnknownError(
        "the send_many loop was left and this send did not finish within "
        "the grace; it may or may not have been delivered",
        cause=APIConnectionError("cancelled after the grace"),
    )
