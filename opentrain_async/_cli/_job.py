"""One bulk job, start to finish: validate, resume from the journal, send, summarise.

The order of a run:

1. read and validate every input (bad lines are reported; ``--strict`` refuses to go on;
   ``--dry-run`` stops here);
2. resolve the token, check the server answers and accepts it (one GET), open the journal;
3. settle inputs a previous run left open (started, never ended): read their conversation
   back; found means delivered, not found means send, unreadable means unknown;
4. feed ``send_many`` a generator over the inputs still to send; the generator writes
   the durable ``started`` record right before yielding an input (the engine pulls it
   only when its send is about to start), and every outcome writes ``ended``;
5. print the summary and return the exit code.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, TextIO

import attrs
from rich.console import Console
from rich.table import Table

from opentrain_async._bulk import SendOutcome
from opentrain_async._client import OpenTrainClient
from opentrain_async._config import Settings
from opentrain_async._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    DeliveryUnknownError,
    OpenTrainError,
)
from opentrain_async._models import Message, OutgoingMessage

from ._input import InputError, JobSource, Line
from ._journal import Journal, JournalError, JournalState, content_hash, identity, open_journal
from ._journal import load_journal as _load_journal
from ._progress import ProgressDisplay

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_START", "EXIT_USAGE", "JobOptions", "run_job"]

logger = logging.getLogger("opentrain_async.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_START = 3

SHOW_BAD_LINES = 20
"""Bad lines listed on a real run (``--dry-run`` lists all)."""


class Action(enum.Enum):
    SEND = "send"
    DONE = "done"
    SKIP_FAILED = "skip_failed"
    RECONCILE = "reconcile"
    UNKNOWN = "unknown"


class StartError(Exception):
    """The run could not start (exit 3): auth, network."""


@attrs.define
class JobOptions:
    """What the ``bulk`` command was asked to do."""

    concurrency: int = 16
    rate: float | None = None
    journal: Path | None = None
    retry_failed: bool = False
    dry_run: bool = False
    strict: bool = False
    json: bool = False
    live: bool = False
    """A live progress bar (a terminal) rather than periodic log lines."""
    progress_interval: float = 2.0
    settle: float = 1.0
    """Seconds an interrupted send is given to finish server-side before read-back."""
    pacing_url: str | None = None
    """Redis URL of a limit shared with other processes (None: $OT_PACING_URL)."""


@attrs.define
class Summary:
    """The figures of one run, for the table and the ``--json`` output."""

    inputs: int = 0
    sent: int = 0
    reconciled: int = 0
    skipped_delivered: int = 0
    skipped_failed: int = 0
    failed: Counter[str] = attrs.Factory(Counter)
    unknown: int = 0
    bad_lines: list[tuple[int, str]] = attrs.Factory(list)
    elapsed: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    pace: str = ""
    stopped: str | None = None
    to_send: int = 0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def delivered(self) -> int:
        return self.sent + self.reconciled + self.skipped_delivered

    def exit_code(self) -> int:
        if self.stopped is not None and self.sent + self.reconciled == 0:
            return EXIT_START
        if self.delivered == self.inputs and self.stopped is None:
            return EXIT_OK
        return EXIT_FAILED

    def as_json(self) -> dict[str, Any]:
        rate = (self.sent + self.reconciled) / self.elapsed if self.elapsed > 0 else 0.0
        return {
            "inputs": self.inputs,
            "delivered": self.delivered,
            "sent": self.sent,
            "reconciled": self.reconciled,
            "skipped": {"delivered": self.skipped_delivered, "failed": self.skipped_failed},
            "failed": self.failed_total,
            "failedByReason": {k: v for k, v in sorted(self.failed.items()) if v},
            "unknown": self.unknown,
            "badLines": [{"line": n, "reason": r} for n, r in self.bad_lines],
            "elapsedSeconds": round(self.elapsed, 3),
            "ratePerSecond": round(rate, 1),
            "requests": self.requests,
            "rateLimited": self.rate_limited,
            "retries": self.retries,
            "pace": self.pace,
            "stopped": self.stopped,
            "exitCode": self.exit_code(),
        }


@attrs.define
class _Plan:
    """Pass one over the input: which lines are bad and what to do with each identity."""

    bad: dict[int, str] = attrs.Factory(dict)
    actions: Counter[Action] = attrs.Factory(Counter)
    to_settle: list[tuple[str, Line]] = attrs.Factory(list)
    inputs: int = 0


def _action(ident: str, state: JournalState, retry_failed: bool) -> Action:
    progress = state.inputs.get(ident)
    if progress is None:
        return Action.SEND
    if progress.ok:
        return Action.DONE
    if progress.open or progress.kind == "delivery_unknown":
        return Action.RECONCILE
    if not progress.final or retry_failed:
        return Action.SEND
    return Action.SKIP_FAILED


def _identity(line: Line) -> tuple[str, str]:
    message = line.message
    assert message is not None
    digest = content_hash(message.conversation_id, message.content)
    return identity(line.number, message.key, digest), digest


def _plan(source: JobSource, state: JournalState, retry_failed: bool) -> _Plan:
    plan = _Plan()
    keys: dict[str, int] = {}
    for line in source.lines():
        plan.inputs += 1
        if line.message is None:
            plan.bad[line.number] = line.problem or "invalid"
            continue
        key = line.message.key
        if key is not None:
            first = keys.setdefault(key, line.number)
            if first != line.number:
                plan.bad[line.number] = f"duplicate key {key!r} (first used on line {first})"
                continue
        ident, _ = _identity(line)
        action = _action(ident, state, retry_failed)
        plan.actions[action] += 1
        if action is Action.RECONCILE:
            plan.to_settle.append((ident, line))
    return plan


def _describe_error(error: OpenTrainError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _stops_run(error: OpenTrainError | None) -> str | None:
    """Failures that will hit every later send too: stop instead of burning the input."""
    if isinstance(error, AuthenticationError):
        return "the API token was rejected (401 UNAUTHORIZED)"
    if isinstance(error, APIConnectionError) and error.reached_server is False:
        return f"the server is unreachable ({_describe_error(error)})"
    return None


async def _preflight(settings: Settings) -> None:
    """One cheap GET to tell 'cannot start' (401, unreachable) apart from per-message errors."""
    async with OpenTrainClient(settings.token, settings.api_root, max_retries=1) as probe:
        try:
            await probe.request("GET", "/messages", params={"limit": "1"})
        except AuthenticationError:
            raise StartError(
                f"authentication failed: the API token (from {settings.token_source}) was "
                f"rejected by {settings.api_root} (401)"
            ) from None
        except APIConnectionError as exc:
            raise StartError(f"cannot reach {settings.api_root}: {_describe_error(exc)}") from None
        except APIError as exc:
            logger.warning(
                "checking the token with GET /messages answered %s; going on, but reading "
                "conversations back after a crash may not work",
                _describe_error(exc),
            )


class _Runner:
    def __init__(
        self,
        source: JobSource,
        options: JobOptions,
        settings: Settings,
        err: TextIO,
    ) -> None:
        self.source = source
        self.options = options
        self.settings = settings
        self.err = err
        self.summary = Summary()
        self.journal: Journal | None = None
        self.state = JournalState()
        self.overrides: dict[str, Action] = {}

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    async def run(self, plan: _Plan) -> Summary:
        summary = self.summary
        summary.inputs = plan.inputs
        summary.bad_lines = sorted(plan.bad.items())
        if plan.bad:
            summary.failed["invalid"] += len(plan.bad)
        summary.skipped_delivered = plan.actions[Action.DONE]
        summary.skipped_failed = plan.actions[Action.SKIP_FAILED]
        options = self.options
        client = OpenTrainClient(
            self.settings.token,
            self.settings.api_root,
            max_concurrency=options.concurrency,
            rate_limit=options.rate,
            pacing_url=options.pacing_url,
        )
        started = time.monotonic()
        try:
            async with client:
                # Messages earlier runs delivered are never credited to another input.
                client.claim_ids(self.state.delivered_ids)
                await self._settle(client, plan)
                summary.to_send = plan.actions[Action.SEND] + sum(
                    1 for a in self.overrides.values() if a is Action.SEND
                )
                if summary.to_send:
                    await self._send(client)
        finally:
            summary.elapsed = time.monotonic() - started
            summary.requests = client.stats.requests
            summary.rate_limited = client.stats.rate_limited
            summary.retries = client.stats.retries
            summary.pace = client.pacer.describe()
        return summary

    async def _settle(self, client: OpenTrainClient, plan: _Plan) -> None:
        """Inputs left open by an earlier run: read back before deciding to send."""
        if not plan.to_settle:
            return
        self.note(
            f"reconciling {len(plan.to_settle):,} send(s) interrupted in an earlier run: "
            "reading their conversations back before deciding to send"
        )
        latest = max(self.state.inputs[i].last_started or 0.0 for i, _ in plan.to_settle)
        wait = latest + self.options.settle - time.time()
        if wait > 0:  # let a request the dead process had on the wire finish server-side
            await asyncio.sleep(wait)
        limit = asyncio.Semaphore(self.options.concurrency)

        async def settle(ident: str, line: Line) -> None:
            async with limit:
                await self._settle_one(client, ident, line)

        await asyncio.gather(*(settle(i, line) for i, line in plan.to_settle))

    async def _settle_one(self, client: OpenTrainClient, ident: str, line: Line) -> None:
        message = line.message
        assert message is not None
        assert self.journal is not None
        progress = self.state.inputs[ident]
        since = progress.first_started or 0.0
        try:
            # Ids already delivered (claim_ids) and found so far are never matched again.
            found = await client.find_own_message(
                message.conversation_id, message.content, since=since
            )
        except DeliveryUnknownError as exc:
            self.overrides[ident] = Action.UNKNOWN
            self.summary.unknown += 1
            await self.journal.ended_failed(
                ident, kind="delivery_unknown", error=_describe_error(exc)
            )
            return
        if found is None:
            self.overrides[ident] = Action.SEND
            return
        self.state.delivered_ids.add(found.id)
        self.overrides[ident] = Action.DONE
        self.summary.reconciled += 1
        await self.journal.ended_ok(ident, found.id, reconciled=True)

    async def _items(self) -> AsyncGenerator[OutgoingMessage, None]:
        """The inputs still to send, each journaled as started right before it is sent."""
        keys: set[str] = set()
        for line in self.source.lines():
            message = line.message
            if message is None:
                continue
            if message.key is not None:
                if message.key in keys:
                    continue  # a duplicate key: reported as a bad line
                keys.add(message.key)
            ident, digest = _identity(line)
            action = self.overrides.get(ident) or _action(
                ident, self.state, self.options.retry_failed
            )
            if action is not Action.SEND:
                continue
            if self.journal is not None:
                await self.journal.started(
                    ident, line.number, message.conversation_id, digest, time.time()
                )
            yield OutgoingMessage(message.conversation_id, message.content, key=ident)

    async def _record(self, outcome: SendOutcome) -> str | None:
        """Journal and count one outcome; returns why the run must stop, if it must."""
        ident = outcome.key
        assert ident is not None
        summary = self.summary
        if outcome.ok:
            assert isinstance(outcome.message, Message)
            if outcome.reconciled:
                summary.reconciled += 1
            else:
                summary.sent += 1
            if self.journal is not None:
                await self.journal.ended_ok(
                    ident, outcome.message.id, reconciled=outcome.reconciled
                )
            return None
        error = outcome.error
        assert error is not None
        stop = _stops_run(error)
        kind = outcome.kind
        if kind == "delivery_unknown":
            summary.unknown += 1
        else:
            summary.failed[kind] += 1
        logger.info("%s: not delivered: %s", ident, _describe_error(error))
        if self.journal is not None:
            await self.journal.ended_failed(
                ident,
                kind=kind,
                error=_describe_error(error),
                code=getattr(error, "code", None),
                status=getattr(error, "status", None),
                final=stop is None,
            )
        return stop

    async def _send(self, client: OpenTrainClient) -> None:
        options = self.options
        items = self._items()
        display = ProgressDisplay(
            client,
            self.summary.to_send,
            live=options.live,
            stream=self.err,
            interval=options.progress_interval,
        )
        try:
            async with (
                display,
                client.send_many(items, concurrency=options.concurrency) as outcomes,
            ):
                async for outcome in outcomes:
                    stop = await self._record(outcome)
                    display.advance()
                    if stop is not None:
                        self.summary.stopped = stop
                        break
        finally:
            await items.aclose()


def _print_bad_lines(bad: list[tuple[int, str]], stream: TextIO, limit: int | None) -> None:
    shown = bad if limit is None else bad[:limit]
    for number, reason in shown:
        print(f"line {number}: {reason}", file=stream)
    if len(bad) > len(shown):
        print(
            f"... and {len(bad) - len(shown):,} more bad lines (--dry-run lists them all)",
            file=stream,
        )


def _summary_table(summary: Summary, journal: Path | None) -> Table:
    table = Table(title="bulk summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    table.add_column("note")
    table.add_row("inputs", f"{summary.inputs:,}", "")
    table.add_row("sent", f"{summary.sent:,}", "delivered by this run")
    if summary.reconciled:
        table.add_row(
            "reconciled", f"{summary.reconciled:,}", "outcome was unknown; found by read-back"
        )
    table.add_row(
        "skipped",
        f"{summary.skipped_delivered + summary.skipped_failed:,}",
        f"already in the journal: {summary.skipped_delivered:,} delivered, "
        f"{summary.skipped_failed:,} failed"
        + (" (--retry-failed resends those)" if summary.skipped_failed else ""),
    )
    table.add_row("failed", f"{summary.failed_total:,}", "not delivered" if journal else "")
    for kind, count in sorted(summary.failed.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(f"  {kind}", f"{count:,}", "")
    table.add_row("unknown", f"{summary.unknown:,}", "may or may not have been delivered")
    sent_now = summary.sent + summary.reconciled
    rate = sent_now / summary.elapsed if summary.elapsed > 0 else 0.0
    table.add_row("elapsed", f"{summary.elapsed:,.1f} s", "")
    table.add_row("effective rate", f"{rate:,.0f} msg/s", f"pace at the end: {summary.pace}")
    table.add_row(
        "requests",
        f"{summary.requests:,}",
        f"{summary.rate_limited:,} answered 429, {summary.retries:,} retries",
    )
    return table


def print_summary(summary: Summary, options: JobOptions, out: TextIO, err: TextIO) -> None:
    """The table (stdout; stderr with ``--json``) and the JSON summary (stdout)."""
    stream = err if options.json else out
    console = Console(file=stream, width=100 if not stream.isatty() else None)
    console.print(_summary_table(summary, options.journal))
    if summary.stopped:
        print(f"stopped early: {summary.stopped}", file=err)
    if options.json:
        print(json.dumps(summary.as_json()), file=out, flush=True)


def dry_run(source: JobSource, options: JobOptions, out: TextIO, err: TextIO) -> int:
    """Validate everything and say what a real run would do; send nothing."""
    state = _load_journal(options.journal) if options.journal else JournalState()
    plan = _plan(source, state, options.retry_failed)
    bad = sorted(plan.bad.items())
    result = {
        "inputs": plan.inputs,
        "valid": plan.inputs - len(bad),
        "bad": len(bad),
        "badLines": [{"line": n, "reason": r} for n, r in bad],
        "wouldSend": plan.actions[Action.SEND],
        "wouldReconcile": plan.actions[Action.RECONCILE],
        "alreadyDelivered": plan.actions[Action.DONE],
        "previouslyFailed": plan.actions[Action.SKIP_FAILED],
    }
    if options.json:
        print(json.dumps(result), file=out)
    else:
        _print_bad_lines(bad, out, None)
        print(
            f"dry run: {plan.inputs:,} inputs, {result['valid']:,} valid, {len(bad):,} bad; "
            f"would send {result['wouldSend']:,}, reconcile {result['wouldReconcile']:,}; "
            f"journal: {result['alreadyDelivered']:,} already delivered, "
            f"{result['previouslyFailed']:,} previously failed; nothing was sent",
            file=out,
        )
    return EXIT_USAGE if bad else EXIT_OK


async def run_job(
    source: JobSource,
    options: JobOptions,
    settings: Settings,
    *,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run a bulk job and print its summary; returns the exit code (raises
    ``InputError``, ``JournalError``, ``StartError`` for the caller to report)."""
    summary = await execute(source, options, settings, err=err)
    print_summary(summary, options, out, err)
    return summary.exit_code()


async def execute(
    source: JobSource,
    options: JobOptions,
    settings: Settings,
    *,
    err: TextIO = sys.stderr,
    preflight: bool = True,
) -> Summary:
    """Run a bulk job (steps 1-4 of the module docstring) and return its figures."""
    journal: Journal | None = None
    state = JournalState()
    if options.journal is not None:
        journal, state = open_journal(options.journal)
    try:
        plan = _plan(source, state, options.retry_failed)
        bad = sorted(plan.bad.items())
        if bad:
            if options.strict:
                _print_bad_lines(bad, err, None)
                raise InputError(
                    f"{len(bad):,} bad line(s) in {source.name} and --strict: nothing was sent"
                )
            _print_bad_lines(bad, err, SHOW_BAD_LINES)
        if state.torn_tail:
            print(
                f"journal {options.journal}: ignored a partial last line (the previous run "
                "was killed while writing it)",
                file=err,
            )
        if preflight:
            await _preflight(settings)
        runner = _Runner(source, options, settings, err)
        runner.journal = journal
        runner.state = state
        if journal is not None:
            await journal.run_started(source.name)
        return await runner.run(plan)
    finally:
        if journal is not None:
            await journal.aclose()


__all__ += [
    "InputError",
    "JournalError",
    "StartError",
    "Summary",
    "dry_run",
    "execute",
    "print_summary",
]
