"""Running a planned bulk job: one client, the SDK's bulk engine, the journal, signals.

The order of a run:

1. one ``OpenTrainClient`` serves the whole run; first its pre-send check
   (``preflight()``, one retry): the token is accepted, can send (scope, claimed
   account, feature) and the base URL speaks the API, or the run does not start (exit 3);
2. inputs an earlier run left open (started, never ended) are read back through the
   bulk engine (a ``BulkSend`` whose deliver is read-back): found means delivered, not
   found joins the sends, unreadable means unknown;
3. ``send_many`` over the plan's inputs to send; the worker that pulled an input writes
   its durable ``started`` record right before the send (``before_send``, so concurrent
   records share fsyncs), and every outcome queues an ``ended`` record;
4. every outcome of steps 2 and 3 goes into one ``BulkReport``: the ``JobResult``.

SIGINT and SIGTERM stop the run gracefully: no new input is started, sends already on
the wire get ``JobOptions.grace`` seconds to finish and be journaled, then the summary
says how to resume and the exit code is 130 or 143.  A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from types import TracebackType
from typing import Any, TextIO

import aiohttp
import attrs

from opentrain_async import (
    BlockedByEarlierFailureError,
    BulkReport,
    BulkSend,
    DeliveryUnknownError,
    Message,
    NotAttemptedError,
    OpenTrainClient,
    OpenTrainError,
    OutgoingMessage,
    RateLimitError,
    SendOutcome,
    Settings,
)

from ._journal import Journal, JournalError, JournalState, JournalStore
from ._journal_redis import RedisJournalStore
from ._options import Failure, JobOptions
from ._plan import Action, JobInput, Plan
from ._progress import ProgressDisplay
from ._run_start import StartStop, describe_error, journaled, stops_run
from ._summary import JobResult

__all__ = ["Runner", "describe_error"]

logger = logging.getLogger("opentrain_async.cli")


class _NotFound(OpenTrainError):
    """Read-back of an input an earlier run left open found nothing: send it."""


class Runner(StartStop):
    """One run of a planned job, with its one client (``async with Runner(...)``)."""

    def __init__(
        self,
        options: JobOptions,
        settings: Settings,
        store: JournalStore | None,
        err: TextIO,
    ) -> None:
        self.options = options
        self.settings = settings
        self.err = err
        self._store = store
        self.client: OpenTrainClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self.report = BulkReport(keep_failures=0)
        """Every outcome of this run (``failures`` keeps the failed ones with their line)."""
        self.failures: list[Failure] = []
        self.journal: Journal | None = None
        self.state = JournalState()
        self.overrides: dict[str, Action] = {}
        """What read-back decided for inputs an earlier run left open, by identity."""
        self.pulled: dict[str, JobInput] = {}
        """Inputs the engine pulled and has not reported yet, by identity."""
        self.lines: dict[str, JobInput] = {}
        """Inputs journaled as started by this run and not ended yet, by identity."""
        self.stopped: str | None = None
        self.interrupted: int | None = None
        self.to_send = 0
        self._sending = False
        self._work: asyncio.Future[Any] | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._recorded = 0
        self._sending_handle: BulkSend | None = None
        self._failed_lines: dict[str, int] = {}
        """Line numbers of this run's failed inputs, by identity (blocked lines name them)."""
        self._stats_before = (0, 0, 0)
        """The client's counts before the run (the pre-send check is not the run's)."""
        self._display: ProgressDisplay | None = None
        """The progress display while sending: notes go above its live line."""

    async def __aenter__(self) -> Runner:
        if isinstance(self._store, RedisJournalStore):  # fencing: no POST once the lease is lost
            self._session = aiohttp.ClientSession(trace_configs=[self._store.trace_config()])
        options = self.options
        clock = options.clock
        try:
            self.client = OpenTrainClient(
                self.settings.token,
                self.settings.api_root,
                max_concurrency=options.concurrency,
                rate_limit=options.rate,
                pacing_url=options.pacing_url,
                session=self._session,
                clock=clock.monotonic,
                sleep=clock.sleep,
                wall_clock=clock.wall,
            )
            await self.client.__aenter__()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.client is not None:
                await self.client.close()
        finally:
            if self._session is not None:
                await self._session.close()

    def _client(self) -> OpenTrainClient:
        assert self.client is not None, "use the Runner as an async context manager"
        return self.client

    def note(self, text: str) -> None:
        if self._display is not None:  # on its own line, over the live line (and a ^C echo)
            self._display.note(text)
            return
        print(text, file=self.err, flush=True)

    # -- the run ------------------------------------------------------------------------

    async def run(self, plan: Plan, journal: Journal | None) -> JobResult:
        """Settle and send what ``plan`` says; the figures of the run."""
        self.journal = journal
        self.state = plan.state
        self.failures.extend(plan.earlier_failures)
        client = self._client()
        # Messages earlier runs delivered are never credited to another input.
        client.claim_ids(self.state.delivered_ids)
        clock = self.options.clock
        started = clock.monotonic()
        try:
            self._work = asyncio.ensure_future(self._settle_and_send(plan))
            try:
                await asyncio.wait({self._work})
            except BaseException:  # this task itself was cancelled
                self._work.cancel()
                await asyncio.wait({self._work})
                raise
            if not self._work.cancelled():
                self._work.result()  # re-raise what went wrong
        finally:
            self.report.elapsed = clock.monotonic() - started
        return self.result(plan)

    def result(self, plan: Plan) -> JobResult:
        stats = self._client().stats
        requests, rate_limited, retries = self._stats_before
        return JobResult(
            report=self.report,
            inputs=plan.inputs,
            bad_lines=plan.bad_lines,
            skipped_delivered=plan.actions[Action.DONE],
            skipped_failed=plan.actions[Action.SKIP_FAILED],
            resolved=plan.actions[Action.RESOLVED],
            failures=self.failures,
            requests=stats.requests - requests,
            rate_limited=stats.rate_limited - rate_limited,
            retries=stats.retries - retries,
            pace=self._client().pacer.describe(),
            stopped=self.stopped,
            interrupted=self.interrupted,
            not_started=max(0, self.to_send - self._recorded - len(self.lines)),
            to_send=self.to_send,
            journal=None if self.journal is None else self.journal.name,
            journal_gone=isinstance(self._store, RedisJournalStore) and self._store.gone,
        )

    async def _settle_and_send(self, plan: Plan) -> None:
        if self.interrupted is not None:
            return
        await self._settle(plan)
        self.to_send = plan.actions[Action.SEND] + sum(
            1 for a in self.overrides.values() if a is Action.SEND
        )
        if self.to_send and self.interrupted is None:
            self._sending = True
            await self._send(plan)

    async def _settle(self, plan: Plan) -> None:
        """Inputs left open by an earlier run: read back, through the bulk engine, before
        deciding to send.  Found is delivered, not found is sent (step 3), unreadable
        stays unknown."""
        if not plan.to_settle:
            return
        assert self.journal is not None
        self.note(
            f"reconciling {len(plan.to_settle):,} send(s) interrupted in an earlier run: "
            "reading their conversations back before deciding to send"
        )
        inputs = self.state.inputs
        latest = max(inputs[i.ident].last_started or 0.0 for i in plan.to_settle)
        # Never more than ``settle``: a clock stepped back must not stall the run.
        clock = self.options.clock
        wait = min(latest + self.options.settle - clock.wall(), self.options.settle)
        if wait > 0:  # let a request the dead process had on the wire finish server-side
            await clock.sleep(wait)
        now = clock.wall()
        since: dict[tuple[str, str], float] = {}
        for item in plan.to_settle:
            # A time in the future (the clock was stepped back since): read back from now.
            # Inputs with one conversation and text read back from the earliest of them.
            first = min(inputs[item.ident].first_started or 0.0, now)
            pair = (item.message.conversation_id, item.message.content)
            since[pair] = min(since.get(pair, first), first)
        client = self._client()

        async def read_back(
            conversation_id: str, content: str, _reconcile: bool, _gate: object, _paced: bool
        ) -> tuple[Message, bool]:
            # Ids already delivered (claim_ids) and found so far are never matched again.
            found = await client.find_own_message(
                conversation_id, content, since=since[conversation_id, content]
            )
            if found is None:
                raise _NotFound("not found by read-back")
            return found, True

        by_ident = {item.ident: item for item in plan.to_settle}
        messages = [
            OutgoingMessage(i.message.conversation_id, i.message.content, key=i.ident)
            for i in plan.to_settle
        ]
        settling = BulkSend(
            read_back,
            messages,
            policy=client.retry_policy,
            concurrency=self.options.concurrency,
            reconcile=False,
            grace=0.0,  # reads only: nothing on the wire is worth waiting for
            ordered=False,  # reads only: nothing a recipient sees, no order to keep
        )
        async with settling as outcomes:
            async for outcome in outcomes:
                assert outcome.key is not None
                await self._settled(by_ident[outcome.key], outcome)

    async def _settled(self, item: JobInput, outcome: SendOutcome) -> None:
        """Journal and count what read-back said about one input."""
        assert self.journal is not None
        error = outcome.error
        if isinstance(error, _NotFound):
            self.overrides[item.ident] = Action.SEND
            return
        if outcome.ok:
            assert outcome.message is not None
            self.report.add(outcome)
            self.overrides[item.ident] = Action.DONE
            self.state.delivered_ids.add(outcome.message.id)
            await self.journal.ended_ok(item.ident, outcome.message.id, reconciled=True)
            return
        assert error is not None
        if not isinstance(error, DeliveryUnknownError):  # still unknown, whatever went wrong
            unknown = DeliveryUnknownError(
                f"the outcome of a send to {item.message.conversation_id} is unknown and it "
                f"could not be read back ({describe_error(error)})",
                cause=error,
            )
            outcome = attrs.evolve(outcome, error=unknown)
            error = unknown
        self.report.add(outcome)
        self.overrides[item.ident] = Action.UNKNOWN
        self._failure(item, "delivery_unknown", error)
        await self.journal.ended_failed(
            item.ident, kind="delivery_unknown", error=describe_error(error)
        )

    def _failure(self, item: JobInput, kind: str, error: OpenTrainError) -> None:
        self.failures.append(
            Failure(
                item.line.number,
                kind,
                describe_error(error),
                item.message.key,
                item.message.conversation_id,
            )
        )

    def _halted(self) -> bool:
        return self.interrupted is not None or self.stopped is not None

    def _items(self, plan: Plan) -> Generator[OutgoingMessage, None, None]:
        """The inputs still to send, in file order; no I/O (the engine pulls with a plain
        ``next``), so ``_before_send`` journals each one in the worker that sends it."""
        for item in plan.sends(self.overrides, on_skip=self._skipped):
            if self._halted():
                return  # a signal, or a failure every later send would meet too
            self.pulled[item.ident] = item
            message = item.message
            yield OutgoingMessage(message.conversation_id, message.content, key=item.ident)

    def _blocked_by_line(
        self, error: BlockedByEarlierFailureError, item: JobInput
    ) -> BlockedByEarlierFailureError:
        """The same refusal, naming the line it waited on (the engine knows indexes)."""
        ident = error.waited_on_key
        line = self._failed_lines.get(ident) if ident is not None else None
        which = f"line {line}" if line is not None else "an earlier line (in an earlier run)"
        return BlockedByEarlierFailureError(
            f"not sent: {which} of conversation {item.message.conversation_id} failed for "
            "good, and a conversation's lines are sent in order (--on-failure continue "
            "sends them anyway, --unordered drops the order)",
            waited_on=line,
            waited_on_key=ident,
            cause=error.__cause__ if isinstance(error.__cause__, OpenTrainError) else None,
        )

    def _skipped(self, item: JobInput, action: Action) -> None:
        """In order: a line an earlier run left failed (or unknown) ends its conversation
        for this run too, so a resume never sends a later line without it."""
        sending = self._sending_handle
        if sending is not None and action in (Action.SKIP_FAILED, Action.UNKNOWN):
            sending.stop_conversation(item.message.conversation_id, key=item.ident)
            self._failed_lines[item.ident] = item.line.number

    async def _before_send(self, message: OutgoingMessage) -> None:
        """Right before an input's send: the durable ``started`` record.  Workers call
        this concurrently, so their records share fsyncs (group commit)."""
        ident = message.key
        assert ident is not None
        if self._halted():
            raise NotAttemptedError("not started: the run is stopping")
        item = self.pulled[ident]
        if self.journal is not None:
            # Once journaled as started it is sent, even if a signal came meanwhile:
            # stopping here would leave it open for the next run to read back.
            try:
                await self.journal.started(
                    ident,
                    item.line.number,
                    message.conversation_id,
                    item.digest,
                    self.options.clock.wall(),
                )
            except JournalError as exc:
                # The engine takes an OpenTrainError (a lost Redis lease is one) for this
                # input's outcome, and an input never started is not reported: say why
                # the run stops, or it ends as if it had finished.
                if self.stopped is None:
                    self.stopped = str(exc)
                raise NotAttemptedError("not started: the journal cannot be written") from None
        self.lines[ident] = item

    async def _record(self, outcome: SendOutcome) -> str | None:
        """Journal and count one outcome; returns why the run must stop, if it must."""
        ident = outcome.key
        assert ident is not None
        pulled = self.pulled.pop(ident)
        item = self.lines.pop(ident, None)
        if item is None and isinstance(outcome.error, BlockedByEarlierFailureError):
            # In order, after a line of its conversation failed for good: a failure of
            # this run, journaled as not final (a rerun decides again, in order).
            item = pulled
            outcome = attrs.evolve(outcome, error=self._blocked_by_line(outcome.error, item))
        elif item is None:  # never started (the run was stopping): the next run sends it
            return None
        self._recorded += 1
        self.report.add(outcome)
        if outcome.ok:
            assert isinstance(outcome.message, Message)
            if self.journal is None:
                return None
            message_id, reconciled = outcome.message.id, outcome.reconciled
            return await journaled(self.journal.ended_ok(ident, message_id, reconciled=reconciled))
        error = outcome.error
        assert error is not None
        stop = stops_run(error, self._client().retry_policy.max_retry_after)
        # The summary and the journal group failures by the server's own reason, also
        # one the SDK's closed set of kinds does not name (as ``BulkReport.by_reason``).
        kind = outcome.reason or outcome.kind
        self._failed_lines[ident] = pulled.line.number
        self._failure(pulled, kind, error)
        logger.info("%s: not delivered: %s", ident, describe_error(error))
        if self.journal is None:
            return stop
        lost = await journaled(
            self.journal.ended_failed(
                ident,
                kind=kind,
                error=describe_error(error),
                code=getattr(error, "code", None),
                status=getattr(error, "status", None),
                final=stop is None and kind not in ("not_attempted", "blocked_by_earlier_failure"),
            )
        )
        return stop or lost

    async def _send(self, plan: Plan) -> None:
        options = self.options
        client = self._client()
        items = self._items(plan)
        # The bar counts every input, like the summary: bad lines and skips are done already.
        display = ProgressDisplay(
            client,
            plan.inputs,
            live=options.live,
            stream=self.err,
            interval=options.progress_interval,
            already_done=plan.inputs - self.to_send,
            already_failed=len(plan.bad) + self.report.failed,
            max_attempts=client.retry_policy.max_retries + 1,
            clock=options.clock.monotonic,
        )
        client.retry_policy.on_retry = display.retrying  # "retrying ... because ...", live
        sending = client.send_many(
            items,
            concurrency=options.concurrency,
            reconcile=True,
            before_send=self._before_send,
            ordered=options.ordered,
            on_failure="continue" if options.on_failure == "continue" else "stop",
        )
        self._sending_handle = sending
        try:
            async with display, sending as outcomes:
                self._display = display
                async for outcome in outcomes:
                    recorded = self._recorded
                    stop = await self._record(outcome)
                    # One never started (the run was stopping) is "not started", not failed.
                    display.advance(outcome.ok or self._recorded == recorded)
                    if stop is not None and self.stopped is None:
                        self.stopped = stop  # no new input; in-flight ones finish
                        if isinstance(outcome.error, RateLimitError):
                            self._cut_after_grace()
        finally:
            self._display = None
            items.close()
            self._unseen(sending.unreported)

    def _unseen(self, unreported: list[SendOutcome]) -> None:
        """Count the started inputs whose outcome the loop never saw (the run cut after
        its grace by a quota's halt or a signal): each as the engine says (cut off:
        unknown; never sent: not attempted), in the summary and ``--failures``; the
        journal keeps them open, so the next run reads each back before sending.
        Synchronous: this runs while the run is being cancelled
        (tests/test_cli_halt_accounting.py)."""
        for outcome in unreported:
            ident = outcome.key
            item = None if ident is None else self.lines.pop(ident, None)
            if ident is None or item is None:  # never started: the next run sends it
                continue
            self.pulled.pop(ident, None)
            self._recorded += 1
            self.report.add(outcome)
            if outcome.error is not None:
                self._failure(item, outcome.reason or outcome.kind, outcome.error)
