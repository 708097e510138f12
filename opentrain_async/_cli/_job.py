"""One bulk job, start to finish: validate, resume from the journal, send, summarise.

The order of a run:

1. ``preflight()``: the token is accepted, can send (scope, claimed account, feature)
   and the base URL speaks the API, or the run does not start (exit 3);
2. open the journal (by default one per input file, see ``default_journal_path``),
   read and validate every input (bad lines are reported; ``--strict`` refuses to go
   on; ``--dry-run`` stops here and needs no token) and refuse a key whose content
   changed since it was sent;
3. settle inputs a previous run left open (started, never ended): read their conversation
   back; found means delivered, not found means send, unreadable means unknown;
4. feed the bulk engine a generator over the inputs still to send; the worker that
   pulled an input writes its durable ``started`` record right before the send
   (``before_send``, so concurrent records share fsyncs), and every outcome queues an
   ``ended`` record;
5. print the summary and return the exit code.

SIGINT and SIGTERM stop the run gracefully: no new input is started, sends already on
the wire get ``JobOptions.grace`` seconds to finish and be journaled, then the summary
says how to resume and the exit code is 130 or 143.  A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import enum
import hashlib
import json
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import attrs
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opentrain_async._bulk import SendOutcome, stops_engine
from opentrain_async._client import OpenTrainClient
from opentrain_async._config import Settings
from opentrain_async._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    DeliveryUnknownError,
    NotAttemptedError,
    NotFoundError,
    OpenTrainError,
    UnexpectedResponseError,
)
from opentrain_async._models import Message, OutgoingMessage
from opentrain_async._time import SYSTEM_CLOCK, Clock

from ._input import InputError, JobSource, Line
from ._journal import (
    FileJournalStore,
    InputIdentity,
    Journal,
    JournalError,
    JournalState,
    JournalStore,
    content_hash,
    identity,
    load_journal,
    open_journal,
)
from ._journal_redis import RedisJournalStore
from ._progress import ProgressDisplay, clip_to_terminal
from ._read import terminal_safe

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_START", "EXIT_USAGE", "JobOptions", "run_job"]

logger = logging.getLogger("opentrain_async.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_START = 3

SHOW_BAD_LINES = 20
"""Bad lines listed on a real run (``--dry-run`` lists them all)."""
SHOW_FAILURES = 10
"""Failures listed under the summary table (``--json`` and ``--failures`` have them all)."""
SHOW_CHANGED = 10
"""Changed keys named when a run refuses to start."""


class Action(enum.Enum):
    SEND = "send"
    DONE = "done"
    SKIP_FAILED = "skip_failed"
    RECONCILE = "reconcile"
    UNKNOWN = "unknown"
    CHANGED = "changed"


class StartError(Exception):
    """The run could not start (exit 3): auth, network, a token that cannot send."""


@attrs.define
class JobOptions:
    """What the ``bulk`` command was asked to do."""

    concurrency: int = 16
    rate: float | None = None
    journal: Path | None = None
    """An explicit journal path (default: ``default_journal_path`` of the input)."""
    no_journal: bool = False
    retry_failed: bool = False
    allow_changed: bool = False
    """Send inputs whose key was delivered with other content (default: refuse)."""
    reuse_journal: bool = False
    """Use a journal written for another input file or API root."""
    failures: Path | None = None
    """Write every input not delivered here, in the input's format."""
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
    grace: float = 10.0
    """After SIGINT/SIGTERM: seconds sends on the wire get to finish and be journaled."""
    journal_store: JournalStore | None = None
    """Where the journal lives, when not in a file (``--journal``/the default path)."""
    clock: Clock = SYSTEM_CLOCK
    """The time seam: the client's, the journal's and the settle wait's clocks."""


@attrs.frozen
class Failure:
    """One input that was not delivered, for the summary and ``--failures``."""

    line: int
    reason: str
    error: str
    key: str | None = None
    conversation_id: str | None = None
    earlier: bool = False
    """Failed in an earlier run (skipped by this one)."""

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"line": self.line, "reason": self.reason, "error": self.error}
        if self.key is not None:
            record["key"] = self.key
        if self.conversation_id is not None:
            record["conversationId"] = self.conversation_id
        if self.earlier:
            record["earlierRun"] = True
        return record


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
    failures: list[Failure] = attrs.Factory(list)
    elapsed: float = 0.0
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0
    pace: str = ""
    stopped: str | None = None
    interrupted: int | None = None
    """The signal that stopped the run (SIGINT, SIGTERM), if one did."""
    not_started: int = 0
    """Inputs this run meant to send but never started (stopped or interrupted)."""
    to_send: int = 0
    journal: str | None = None
    """Where this run's journal is (None: no journal, a rerun sends everything again)."""

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def delivered(self) -> int:
        return self.sent + self.reconciled + self.skipped_delivered

    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
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
            "notStarted": self.not_started,
            "badLines": [{"line": n, "reason": r} for n, r in self.bad_lines],
            "failures": [f.as_json() for f in self.failures],
            "elapsedSeconds": round(self.elapsed, 3),
            "ratePerSecond": round(rate, 1),
            "requests": self.requests,
            "rateLimited": self.rate_limited,
            "retries": self.retries,
            "pace": self.pace,
            "stopped": self.stopped,
            "interrupted": None if self.interrupted is None else _signal_name(self.interrupted),
            "journal": self.journal,
            "exitCode": self.exit_code(),
        }


def _signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@attrs.frozen
class _Input:
    """One valid input with its identity, as both passes over the file see it."""

    line: Line
    message: OutgoingMessage
    ident: str
    digest: str


def _inputs(source: JobSource) -> Iterator[_Input | tuple[Line, str]]:
    """Every line: an ``_Input``, or the line and why it is bad.

    Identity is by content (or key), so both passes over the file (plan and send)
    agree whatever the order of the lines: the n-th occurrence of one
    (conversationId, content) pair is always the same input.
    """
    keys: dict[str, int] = {}
    occurrences: Counter[str] = Counter()
    for line in source.lines():
        message = line.message
        if message is None:
            yield line, line.problem or "invalid"
            continue
        key = message.key
        if key is not None:
            first = keys.setdefault(key, line.number)
            if first != line.number:
                yield line, f"duplicate key {key!r} (first used on line {first})"
                continue
        digest = content_hash(message.conversation_id, message.content)
        if key is None:
            occurrences[digest] += 1
        yield _Input(line, message, identity(key, digest, occurrences[digest]), digest)


@attrs.define
class _Plan:
    """Pass one over the input: which lines are bad and what to do with each identity."""

    bad: dict[int, str] = attrs.Factory(dict)
    actions: Counter[Action] = attrs.Factory(Counter)
    to_settle: list[_Input] = attrs.Factory(list)
    changed: list[_Input] = attrs.Factory(list)
    earlier_failures: list[Failure] = attrs.Factory(list)
    inputs: int = 0


def _action(item: _Input, state: JournalState, options: JobOptions) -> Action:
    progress = state.inputs.get(item.ident)
    if progress is None:
        return Action.SEND
    if progress.sha256 is not None and progress.sha256 != item.digest:
        # A key reused with other content: never skip it silently, never resend blindly.
        if progress.ok or progress.open or progress.kind == "delivery_unknown":
            return Action.SEND if options.allow_changed else Action.CHANGED
        return Action.SEND  # it failed with the old content: the new one is a new attempt
    if progress.ok:
        return Action.DONE
    if progress.open or progress.kind == "delivery_unknown":
        return Action.RECONCILE
    if not progress.final or options.retry_failed:
        return Action.SEND
    return Action.SKIP_FAILED


def _by_digest(state: JournalState) -> dict[str, list[str]]:
    """Identities the journal has as delivered (or maybe delivered), by content hash."""
    found: dict[str, list[str]] = {}
    for ident, progress in state.inputs.items():
        if progress.sha256 is not None and (
            progress.ok or progress.open or progress.kind == "delivery_unknown"
        ):
            found.setdefault(progress.sha256, []).append(ident)
    return found


def _plan(source: JobSource, state: JournalState, options: JobOptions) -> _Plan:
    plan = _Plan()
    by_digest = _by_digest(state)
    seen: set[str] = set()
    unrecorded: list[_Input] = []
    for entry in _inputs(source):
        plan.inputs += 1
        if not isinstance(entry, _Input):
            line, problem = entry
            plan.bad[line.number] = problem
            continue
        if entry.ident in state.inputs:
            seen.add(entry.ident)
        elif entry.digest in by_digest:
            unrecorded.append(entry)  # a key added or removed? decided once all are seen
            continue
        _plan_one(plan, entry, state, options)
    for entry in unrecorded:
        # The same message (conversation, content) recorded under an identity no line
        # has any more: a key was added to the line, or removed from it.  It is that
        # input, not a new one (adding keys to a half-sent job must not resend it).
        olds = [i for i in by_digest[entry.digest] if i not in seen]
        if olds:
            seen.add(olds[0])
            state.inputs[entry.ident] = state.inputs[olds[0]]
        _plan_one(plan, entry, state, options)
    return plan


def _plan_one(plan: _Plan, entry: _Input, state: JournalState, options: JobOptions) -> None:
    """Decide one input's action and note it in ``plan``."""
    action = _action(entry, state, options)
    plan.actions[action] += 1
    if action is Action.RECONCILE:
        plan.to_settle.append(entry)
    elif action is Action.CHANGED:
        plan.changed.append(entry)
    elif action is Action.SKIP_FAILED:
        progress = state.inputs[entry.ident]
        plan.earlier_failures.append(
            Failure(
                entry.line.number,
                progress.kind or "error",
                progress.error or "",
                entry.message.key,
                entry.message.conversation_id,
                earlier=True,
            )
        )


def _refuse_empty(source: JobSource) -> None:
    """An empty job is a mistake (a wrong file?), not a success: exit 2 before any request."""
    if next(iter(_inputs(source)), None) is None:
        raise InputError(f"{source.name}: has no inputs (nothing to send)")


def _refuse_changed(plan: _Plan, journal: str) -> None:
    """Exit 2 naming the keys delivered (or maybe delivered) with other content."""
    if not plan.changed:
        return
    named = ", ".join(
        f"{item.message.key!r} (line {item.line.number})" for item in plan.changed[:SHOW_CHANGED]
    )
    more = len(plan.changed) - SHOW_CHANGED
    raise JournalError(
        f"{len(plan.changed):,} key(s) were sent in an earlier run with other content: "
        f"{named}{f' and {more:,} more' if more > 0 else ''} (journal {journal}). Nothing "
        "was sent. Restore the original content, give the new message a new key, or pass "
        "--allow-changed to send the new content as well"
    )


def default_journal_path(source: JobSource, env: dict[str, str] | None = None) -> Path:
    """Where ``bulk FILE`` journals without ``--journal``: one file per input path under
    ``${XDG_STATE_HOME:-~/.local/state}/opentrain_async/jobs/`` (beside ``listen()``'s
    cursors), named after the file plus a hash of its absolute path."""
    environ = os.environ if env is None else env
    absolute = str(Path(source.name).resolve())
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "opentrain_async" / "jobs" / f"{Path(absolute).name}-{digest}.journal"


async def _refuse_moved_job(
    source: JobSource, options: JobOptions, api_root: str | None = None
) -> None:
    """A file about to get a new default journal, whose inputs another default journal
    already delivered (the file was moved, renamed or converted to CSV): exit 2 naming
    that journal, rather than send them all again.  An explicit ``--journal`` says
    "this is a job of its own" and skips the check.  Journals of another API (staging
    vs production) are not this job's, when ``api_root`` is known (``--dry-run``, which
    needs no token, does not resolve it and so looks at every API's journals)."""
    if options.journal is not None or options.journal_store is not None:
        return
    path = _journal_path(source, options)
    if path is None or path.exists() or not path.parent.is_dir():
        return
    others = sorted(p for p in path.parent.glob("*.journal") if p != path)
    if not others:
        return
    mine = {e.ident: e.digest for e in _inputs(source) if isinstance(e, _Input)}
    for other in others:
        try:
            state = await load_journal(FileJournalStore(other, read_only=True))
        except (JournalError, OSError):
            continue  # not ours, or unreadable: it says nothing about this job
        sent = sum(
            1
            for ident, progress in state.inputs.items()
            if mine.get(ident) == progress.sha256
            and (progress.ok or progress.open or progress.kind == "delivery_unknown")
        )
        if not sent:
            continue
        was = (state.header or {}).get("input") or {}
        if api_root is not None and was.get("apiRoot") not in (None, api_root):
            continue  # sent to another API: says nothing about this one
        raise JournalError(
            f"{sent:,} of these inputs were already sent (or may have been: outcome "
            f"unknown) by the job of {was.get('path')} "
            f"(journal {other}): was this file moved, renamed or converted? Nothing was "
            f"sent. Resume that job with --journal {other} --reuse-journal, or pass "
            "--journal with a new path to send everything as a new job"
        )


def _journal_store(source: JobSource, options: JobOptions) -> JournalStore | None:
    if options.journal_store is not None and not options.no_journal:
        return options.journal_store
    path = _journal_path(source, options)
    if path is None:
        return None
    if options.journal is None:  # the default place: create its directory
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return FileJournalStore(path)


def _journal_path(source: JobSource, options: JobOptions) -> Path | None:
    if options.no_journal:
        return None
    if options.journal is not None:
        return options.journal
    if source.is_stdin:
        return None
    return default_journal_path(source)


def _input_identity(source: JobSource, api_root: str | None) -> InputIdentity:
    path = "<stdin>" if source.is_stdin else str(Path(source.name).resolve())
    return InputIdentity(path, api_root)


def _describe_error(error: OpenTrainError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _stops_run(error: OpenTrainError | None) -> str | None:
    """Failures that will hit every later send too: stop instead of burning the input."""
    if isinstance(error, AuthenticationError):
        return "the API token was rejected (401 UNAUTHORIZED)"
    if error is not None and stops_engine(error):
        return f"this token cannot send: {_describe_error(error)}"
    if isinstance(error, APIConnectionError) and error.reached_server is False:
        return f"the server is unreachable ({_describe_error(error)})"
    return None


async def _preflight(settings: Settings) -> None:
    """Before the first send: the token is accepted and can send, and the base URL
    speaks the API.  Anything else is exit 3 with what to fix."""
    root = settings.api_root
    async with OpenTrainClient(settings.token, root, max_retries=1) as probe:
        try:
            answer = await probe.preflight()
        except AuthenticationError:
            raise StartError(
                f"authentication failed: the API token (from {settings.token_source}) was "
                f"rejected by {root} (401)"
            ) from None
        except APIConnectionError as exc:
            raise StartError(f"cannot reach {root}: {_describe_error(exc)}") from None
        except (NotFoundError, UnexpectedResponseError) as exc:
            raise StartError(
                f"{root} does not answer like the OpenTrain public API "
                f"({_describe_error(exc)}); check --base-url / $OT_API_BASE_URL (an origin "
                "such as https://app.opentrain.ai, without a path)"
            ) from None
        except APIError as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise StartError(
                    f"{root} refused the pre-send check ({_describe_error(exc)}); nothing was sent"
                ) from None
            logger.warning(
                "the pre-send check (GET /auth/me) answered %s; going on", _describe_error(exc)
            )
            return
    if not answer.can_send:
        fixes = "; ".join(f"{p.missing}: {p.fix}" for p in answer.problems)
        raise StartError(f"this token cannot send messages, nothing was sent. Fix: {fixes}")


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
        self.pulled: dict[str, _Input] = {}
        """Inputs the engine pulled and has not reported yet, by identity."""
        self.lines: dict[str, _Input] = {}
        """Inputs journaled as started by this run and not ended yet, by identity."""
        self._sending = False
        self._work: asyncio.Future[None] | None = None
        self._grace: asyncio.TimerHandle | None = None
        self._recorded = 0

    def note(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    # -- signals ------------------------------------------------------------------------

    def on_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM: stop starting inputs; give sends on the wire ``grace`` seconds
        (a second signal: none) before cancelling them."""
        summary = self.summary
        first = summary.interrupted is None
        if first:
            summary.interrupted = signum
        work = self._work
        if work is None or work.done():
            return
        if not self._sending or not first:
            work.cancel()  # reading, settling (reads only), or asked twice: stop now
            return
        self.note(
            f"{_signal_name(signum)}: starting no new sends; waiting up to "
            f"{self.options.grace:g} s for the ones on the wire (again to stop now)"
        )
        self._grace = asyncio.get_running_loop().call_later(self.options.grace, work.cancel)

    @contextlib.contextmanager
    def signals_handled(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed: list[int] = []
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            try:
                loop.add_signal_handler(signum, self.on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue  # not the main thread, or not POSIX: default handling
            installed.append(signum)
        try:
            yield
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            if self._grace is not None:
                self._grace.cancel()

    # -- the run ------------------------------------------------------------------------

    async def run(self, plan: _Plan) -> Summary:
        summary = self.summary
        summary.inputs = plan.inputs
        summary.bad_lines = sorted(plan.bad.items())
        if plan.bad:
            summary.failed["invalid"] += len(plan.bad)
        summary.skipped_delivered = plan.actions[Action.DONE]
        summary.skipped_failed = plan.actions[Action.SKIP_FAILED]
        summary.failures.extend(plan.earlier_failures)
        options = self.options
        session = None
        store = None if self.journal is None else self.journal.store
        if isinstance(store, RedisJournalStore):  # fencing: no POST once the lease is lost
            session = aiohttp.ClientSession(trace_configs=[store.trace_config()])
        clock = options.clock
        client = OpenTrainClient(
            self.settings.token,
            self.settings.api_root,
            max_concurrency=options.concurrency,
            rate_limit=options.rate,
            pacing_url=options.pacing_url,
            session=session,
            clock=clock.monotonic,
            sleep=clock.sleep,
            wall_clock=clock.wall,
        )
        started = clock.monotonic()
        try:
            async with client:
                # Messages earlier runs delivered are never credited to another input.
                client.claim_ids(self.state.delivered_ids)
                self._work = asyncio.ensure_future(self._settle_and_send(client, plan))
                try:
                    await asyncio.wait({self._work})
                except BaseException:  # this task itself was cancelled
                    self._work.cancel()
                    await asyncio.wait({self._work})
                    raise
                if not self._work.cancelled():
                    self._work.result()  # re-raise what went wrong
        finally:
            summary.elapsed = clock.monotonic() - started
            summary.requests = client.stats.requests
            summary.rate_limited = client.stats.rate_limited
            summary.retries = client.stats.retries
            summary.pace = client.pacer.describe()
            summary.not_started = max(0, summary.to_send - self._recorded - len(self.lines))
            if session is not None:
                await session.close()
        return summary

    async def _settle_and_send(self, client: OpenTrainClient, plan: _Plan) -> None:
        if self.summary.interrupted is not None:
            return
        await self._settle(client, plan)
        summary = self.summary
        summary.to_send = plan.actions[Action.SEND] + sum(
            1 for a in self.overrides.values() if a is Action.SEND
        )
        if summary.to_send and summary.interrupted is None:
            self._sending = True
            await self._send(client)

    async def _settle(self, client: OpenTrainClient, plan: _Plan) -> None:
        """Inputs left open by an earlier run: read back before deciding to send."""
        if not plan.to_settle:
            return
        self.note(
            f"reconciling {len(plan.to_settle):,} send(s) interrupted in an earlier run: "
            "reading their conversations back before deciding to send"
        )
        latest = max(self.state.inputs[i.ident].last_started or 0.0 for i in plan.to_settle)
        # Never more than ``settle``: a clock stepped back must not stall the run.
        clock = self.options.clock
        wait = min(latest + self.options.settle - clock.wall(), self.options.settle)
        if wait > 0:  # let a request the dead process had on the wire finish server-side
            await clock.sleep(wait)
        limit = asyncio.Semaphore(self.options.concurrency)

        async def settle(item: _Input) -> None:
            async with limit:
                await self._settle_one(client, item)

        await asyncio.gather(*(settle(item) for item in plan.to_settle))

    async def _settle_one(self, client: OpenTrainClient, item: _Input) -> None:
        message = item.message
        assert self.journal is not None
        progress = self.state.inputs[item.ident]
        # A time in the future (the clock was stepped back since): read back from now.
        since = min(progress.first_started or 0.0, self.options.clock.wall())
        try:
            # Ids already delivered (claim_ids) and found so far are never matched again.
            found = await client.find_own_message(
                message.conversation_id, message.content, since=since
            )
        except DeliveryUnknownError as exc:
            self.overrides[item.ident] = Action.UNKNOWN
            self.summary.unknown += 1
            self._failure(item, "delivery_unknown", exc)
            await self.journal.ended_failed(
                item.ident, kind="delivery_unknown", error=_describe_error(exc)
            )
            return
        if found is None:
            self.overrides[item.ident] = Action.SEND
            return
        self.state.delivered_ids.add(found.id)
        self.overrides[item.ident] = Action.DONE
        self.summary.reconciled += 1
        await self.journal.ended_ok(item.ident, found.id, reconciled=True)

    def _failure(self, item: _Input, kind: str, error: OpenTrainError) -> None:
        self.summary.failures.append(
            Failure(
                item.line.number,
                kind,
                _describe_error(error),
                item.message.key,
                item.message.conversation_id,
            )
        )

    def _halted(self) -> bool:
        return self.summary.interrupted is not None or self.summary.stopped is not None

    def _items(self) -> Generator[OutgoingMessage, None, None]:
        """The inputs still to send, in file order; no I/O (the engine pulls with a plain
        ``next``), so ``_before_send`` journals each one in the worker that sends it."""
        options = self.options
        for item in _inputs(self.source):
            if not isinstance(item, _Input):
                continue
            action = self.overrides.get(item.ident) or _action(item, self.state, options)
            if action is not Action.SEND:
                continue
            if self._halted():
                return  # a signal, or a failure every later send would meet too
            self.pulled[item.ident] = item
            message = item.message
            yield OutgoingMessage(message.conversation_id, message.content, key=item.ident)

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
                if self.summary.stopped is None:
                    self.summary.stopped = str(exc)
                raise NotAttemptedError("not started: the journal cannot be written") from None
        self.lines[ident] = item

    async def _record(self, outcome: SendOutcome) -> str | None:
        """Journal and count one outcome; returns why the run must stop, if it must."""
        ident = outcome.key
        assert ident is not None
        pulled = self.pulled.pop(ident)
        item = self.lines.pop(ident, None)
        if item is None:  # never started (the run was stopping): the next run sends it
            return None
        self._recorded += 1
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
        # The summary and the journal group failures by the server's own reason, also
        # one the SDK's closed set of kinds does not name.
        kind = outcome.reason or outcome.kind
        if kind == "delivery_unknown":
            summary.unknown += 1
        else:
            summary.failed[kind] += 1
        self._failure(pulled, kind, error)
        logger.info("%s: not delivered: %s", ident, _describe_error(error))
        if self.journal is not None:
            await self.journal.ended_failed(
                ident,
                kind=kind,
                error=_describe_error(error),
                code=getattr(error, "code", None),
                status=getattr(error, "status", None),
                final=stop is None and kind != "not_attempted",
            )
        return stop

    async def _send(self, client: OpenTrainClient) -> None:
        options = self.options
        summary = self.summary
        items = self._items()
        # The bar counts every input, like the summary: bad lines and skips are done already.
        display = ProgressDisplay(
            client,
            summary.inputs,
            live=options.live,
            stream=self.err,
            interval=options.progress_interval,
            already_done=summary.inputs - summary.to_send,
            already_failed=summary.failed_total + summary.unknown,
            max_attempts=client.retry_policy.max_retries + 1,
        )
        client.retry_policy.on_retry = display.retrying  # "retrying ... because ...", live
        sending = client.send_many(
            items,
            concurrency=options.concurrency,
            reconcile=True,
            before_send=self._before_send,
        )
        try:
            async with display, sending as outcomes:
                async for outcome in outcomes:
                    stop = await self._record(outcome)
                    display.advance(outcome.ok)
                    if stop is not None and self.summary.stopped is None:
                        self.summary.stopped = stop  # no new input; in-flight ones finish
        finally:
            items.close()


def _print_bad_lines(bad: list[tuple[int, str]], stream: TextIO, limit: int | None) -> None:
    shown = bad if limit is None else bad[:limit]
    for number, reason in shown:
        print(f"line {number}: {reason}", file=stream)
    if len(bad) > len(shown):
        print(
            f"... and {len(bad) - len(shown):,} more bad lines (--dry-run lists them all)",
            file=stream,
        )


def _summary_table(summary: Summary) -> Table:
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
    table.add_row("failed", f"{summary.failed_total:,}", "not delivered")
    for kind, count in sorted(summary.failed.items(), key=lambda kv: (-kv[1], kv[0])):
        # The kind is the server's details.reason: text, never rich markup ("[/bold]").
        table.add_row(f"  {escape(terminal_safe(kind))}", f"{count:,}", "")
    table.add_row("unknown", f"{summary.unknown:,}", "may or may not have been delivered")
    if summary.not_started:
        table.add_row("not started", f"{summary.not_started:,}", "the run stopped first")
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


def _print_failures(summary: Summary, stream: TextIO, options: JobOptions) -> None:
    failures = sorted(summary.failures, key=lambda f: f.line)
    if not failures:
        return
    print("not delivered:", file=stream)
    for failure in failures[:SHOW_FAILURES]:
        key = f" key {failure.key!r}" if failure.key is not None else ""
        conv = f" to {failure.conversation_id}" if failure.conversation_id else ""
        earlier = " (earlier run)" if failure.earlier else ""
        text = f"  line {failure.line}{key}{conv}: {failure.reason}{earlier}: {failure.error}"
        text = terminal_safe(text)  # the reason and error quote the server
        print(clip_to_terminal(text, stream), file=stream)  # the full text: --failures/--json
    rest = len(failures) - SHOW_FAILURES
    if rest > 0:
        where = f"--failures {options.failures}" if options.failures else "--failures FILE"
        print(f"  ... and {rest:,} more ({where} or --json lists them all)", file=stream)


def _how_to_resume(summary: Summary, stream: TextIO) -> None:
    if summary.interrupted is None and summary.stopped is None:
        if summary.journal is not None:
            print(f"journal {summary.journal} (a rerun sends nothing twice)", file=stream)
        return
    if summary.stopped:
        print(f"stopped early: {summary.stopped}", file=stream)
    if summary.interrupted is not None:
        print(
            f"interrupted by {_signal_name(summary.interrupted)}: no new sends were started",
            file=stream,
        )
    if summary.journal is not None:
        print(
            f"journal {summary.journal}: rerun the same command to resume; nothing "
            "delivered is sent again",
            file=stream,
        )
    else:
        print(
            "no journal (--no-journal or stdin): a rerun would send every input again",
            file=stream,
        )


def print_summary(summary: Summary, options: JobOptions, out: TextIO, err: TextIO) -> None:
    """The table and failures (stdout; stderr with ``--json``) and the JSON (stdout)."""
    stream = err if options.json else out
    console = Console(file=stream, width=100 if not stream.isatty() else None)
    console.print(_summary_table(summary))
    _print_failures(summary, stream, options)
    _how_to_resume(summary, err)
    if options.json:
        print(json.dumps(summary.as_json()), file=out, flush=True)


def write_failures(path: Path, source: JobSource, summary: Summary) -> int:
    """Write every input not delivered (bad lines included) to ``path`` in the input's
    format, plus ``line``, ``reason`` and ``error`` columns: fix it and feed it back.
    Returns how many were written."""
    by_line = {f.line: f for f in summary.failures}
    for number, reason in summary.bad_lines:
        by_line.setdefault(number, Failure(number, "invalid", reason))
    if not by_line:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # an old failures file must not be taken for this run's
        return 0
    rows: list[dict[str, Any]] = []
    for line in source.lines():
        failure = by_line.get(line.number)
        if failure is None:
            continue
        record: dict[str, Any] = dict(line.record or {})
        if line.raw is not None and not record:
            record["raw"] = line.raw
        record.update({"line": line.number, "reason": failure.reason, "error": failure.error})
        rows.append(record)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as handle:
        if source.format == "csv":
            fields = ["conversationId", "content", "key", "line", "reason", "error"]
            extra = sorted({k for r in rows for k in r} - set(fields))
            writer = csv.DictWriter(handle, fieldnames=fields + extra)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


async def dry_run(source: JobSource, options: JobOptions, out: TextIO, err: TextIO) -> int:
    """Validate everything and say what a real run would do; send nothing."""
    _refuse_empty(source)
    store = None if options.journal_store is None else options.journal_store
    path = _journal_path(source, options)
    if store is None and path is not None:
        store = FileJournalStore(path, read_only=True)
    state = JournalState()
    await _refuse_moved_job(source, options)
    if store is not None:
        state = await load_journal(store)
    plan = _plan(source, state, options)
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
        "changedKeys": [{"line": i.line.number, "key": i.message.key} for i in plan.changed],
        "journal": None if store is None else store.name,
    }
    if options.json:
        print(json.dumps(result), file=out)
    else:
        _print_bad_lines(bad, out, None)
        for item in plan.changed:
            print(
                f"line {item.line.number}: key {item.message.key!r} was sent before with other "
                "content (a real run refuses to start; --allow-changed sends it)",
                file=out,
            )
        print(
            f"dry run: {plan.inputs:,} inputs, {result['valid']:,} valid, {len(bad):,} bad; "
            f"would send {result['wouldSend']:,}, reconcile {result['wouldReconcile']:,}; "
            + (
                f"journal: {result['alreadyDelivered']:,} already delivered, "
                f"{result['previouslyFailed']:,} previously failed; "
                if store is not None
                else ""
            )
            + "nothing was sent",
            file=out,
        )
    return EXIT_USAGE if bad or plan.changed else EXIT_OK


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
    if options.failures is not None:
        written = write_failures(options.failures, source, summary)
        if written:
            print(f"{written:,} input(s) not delivered written to {options.failures}", file=err)
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
    store = _journal_store(source, options)
    if store is None and source.is_stdin and not options.no_journal:
        print(
            "reading stdin without --journal: this run cannot be resumed (a rerun would "
            "send every input again)",
            file=err,
        )
    _refuse_empty(source)
    if options.strict:  # refuse before any request
        bad = sorted((e[0].number, e[1]) for e in _inputs(source) if not isinstance(e, _Input))
        if bad:
            _print_bad_lines(bad, err, None)
            raise InputError(
                f"{len(bad):,} bad line(s) in {source.name} and --strict: nothing was sent"
            )
    await _refuse_moved_job(source, options, settings.api_root)
    runner = _Runner(source, options, settings, err)
    with runner.signals_handled():  # from here on, SIGINT/SIGTERM end with a summary
        if preflight:  # before the journal: a server that is not the API is exit 3, first
            await _preflight(settings)
        if store is not None:
            journal, state = await open_journal(
                store,
                _input_identity(source, settings.api_root),
                reuse=options.reuse_journal,
                wall=options.clock.wall,
            )
        runner.summary.journal = None if journal is None else journal.name
        try:
            plan = _plan(source, state, options)
            _refuse_changed(plan, "" if journal is None else journal.name)
            bad = sorted(plan.bad.items())
            if bad:
                _print_bad_lines(bad, err, SHOW_BAD_LINES)
            if isinstance(store, RedisJournalStore) and store.took_over is not None:
                runner.note(
                    f"{store.url.where}: took over the lease of a run that is gone "
                    f"({store.took_over.describe()})"
                )
            if journal is not None and state.torn_tail:
                print(
                    f"journal {journal.name}: ignored a partial last line (the previous run "
                    "was killed while writing it)",
                    file=err,
                )
            runner.journal = journal
            runner.state = state
            if journal is not None:
                await journal.run_started(source.name)
            return await runner.run(plan)
        finally:
            if journal is not None:
                await journal.aclose()


__all__ += [
    "Failure",
    "InputError",
    "JournalError",
    "StartError",
    "Summary",
    "default_journal_path",
    "dry_run",
    "execute",
    "print_summary",
    "write_failures",
]
