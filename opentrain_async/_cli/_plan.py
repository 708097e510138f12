"""The plan of a bulk job: every line of the input matched against the journal.

What each input will be: sent, skipped as delivered, skipped as failed in an earlier
run, read back first (an earlier run left it open), or refused (its key was delivered
with other content).  No request and no write: ``--dry-run`` is this plan printed, and
a real run sends exactly what its plan says.

An input's identity is by content (or key), so every pass over the job agrees whatever
the order of its lines: the n-th occurrence of one (conversationId, content) pair is
always the same input.  The job is read once (``JobSource`` holds its bytes), so the
plan, the sends and ``--failures`` see the same lines.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

import attrs

from opentrain_async import OutgoingMessage

from ._input import InputError, JobSource, Line
from ._journal import (
    FileJournalStore,
    InputIdentity,
    JournalError,
    JournalState,
    JournalStore,
    Progress,
    content_hash,
    identity,
    load_journal,
)
from ._options import EXIT_OK, EXIT_USAGE, Failure, JobOptions

__all__ = [
    "Action",
    "JobInput",
    "LedgerFind",
    "Plan",
    "decide",
    "default_journal_path",
    "dry_run",
    "entries",
    "input_identity",
    "job_fingerprint",
    "jobs_directory",
    "journal_path",
    "journal_store",
    "make_plan",
    "merge_ledger",
    "print_bad_lines",
    "refuse_changed",
    "refuse_empty",
    "refuse_moved_job",
    "refuse_strict",
    "uses_default_journal",
]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

SHOW_CHANGED = 10
"""Changed keys named when a run refuses to start."""


class Action(enum.Enum):
    SEND = "send"
    DONE = "done"
    SKIP_FAILED = "skip_failed"
    RESOLVED = "resolved"
    RECONCILE = "reconcile"
    UNKNOWN = "unknown"
    CHANGED = "changed"


@attrs.frozen
class JobInput:
    """One valid input with its identity."""

    line: Line
    message: OutgoingMessage
    ident: str
    digest: str


OUTCOME = "opentrain"
"""The ``--failures`` row's outcome object (JSONL; CSV: ``opentrain.*`` columns): the
input's own fields stay as they were, whatever they are named."""


def carried_identity(line: Line) -> str | None:
    """The identity a ``--failures`` row carries from the run that wrote it (None for
    any other line): fed back, the row is the same input, not the n-th copy of its text
    in the smaller file."""
    record = line.record or {}
    outcome = record.get(OUTCOME)
    carried = outcome.get("id") if isinstance(outcome, dict) else record.get(f"{OUTCOME}.id")
    return carried if isinstance(carried, str) and carried else None


def _occurrence(carried: str | None, digest: str) -> int | None:
    """The occurrence number of a carried ``c:<digest>:<n>`` identity of this content."""
    if carried is None:
        return None
    kind, _, rest = carried.partition(":")
    found, _, number = rest.rpartition(":")
    if kind != "c" or found != digest or not number.isdigit() or int(number) < 1:
        return None
    return int(number)


def entries(source: JobSource) -> Iterator[JobInput | tuple[Line, str]]:
    """Every line: a ``JobInput``, or the line and why it is bad.

    A line's identity is its key, else its content and which occurrence of that content
    it is; a ``--failures`` row fed back keeps the occurrence it had in the original job
    (``carried_identity``), so every journal names it as the original's did."""
    keys: dict[str, int] = {}
    occurrences: Counter[str] = Counter()
    lines = list(source.lines()) if _has_carried(source) else None
    used: set[str] = set()
    if lines is not None:  # carried identities first: an uncarried line never takes one
        for line in lines:
            message = line.message
            if message is not None and message.key is None:
                digest = content_hash(message.conversation_id, message.content)
                number = _occurrence(carried_identity(line), digest)
                if number is not None:
                    used.add(identity(None, digest, number))
    taken: set[str] = set()
    for line in source.lines() if lines is None else lines:
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
        if key is not None:
            yield JobInput(line, message, identity(key, digest, 0), digest)
            continue
        number = _occurrence(carried_identity(line), digest)
        ident = None if number is None else identity(None, digest, number)
        if ident is None or ident in taken:
            while True:
                occurrences[digest] += 1
                ident = identity(None, digest, occurrences[digest])
                if ident not in used and ident not in taken:
                    break
        taken.add(ident)
        yield JobInput(line, message, ident, digest)


_CARRIED: weakref.WeakKeyDictionary[JobSource, bool] = weakref.WeakKeyDictionary()


def _has_carried(source: JobSource) -> bool:
    """Whether any line carries an identity (only ``--failures`` rows do); one pass
    per job, however often its entries are read."""
    known = _CARRIED.get(source)
    if known is None:
        known = _CARRIED[source] = any(carried_identity(x) is not None for x in source.lines())
    return known


_FINGERPRINTS: weakref.WeakKeyDictionary[JobSource, str] = weakref.WeakKeyDictionary()


def job_fingerprint(source: JobSource) -> str:
    """The job's content identity: the sum (mod 2**256) of the SHA-256 of each input's
    identity and content hash, with the count.  Order-free without sorting (one pass,
    no copy of the job): the same job under another path, name or line order has the
    same fingerprint; any other content has another."""
    known = _FINGERPRINTS.get(source)
    if known is not None:
        return known
    total = count = 0
    for entry in entries(source):
        if isinstance(entry, JobInput):
            item = f"{entry.ident}\x00{entry.digest}".encode("utf-8", "surrogatepass")
            total += int.from_bytes(hashlib.sha256(item).digest(), "big")
            count += 1
    summed = (total % (1 << 256)).to_bytes(32, "big")
    fingerprint = hashlib.sha256(summed + count.to_bytes(8, "big")).hexdigest()
    _FINGERPRINTS[source] = fingerprint
    return fingerprint


def _sent_or_maybe(progress: Progress) -> bool:
    """The journal has this input as delivered, or as maybe delivered."""
    return progress.ok or progress.open or progress.kind == "delivery_unknown"


def decide(item: JobInput, state: JournalState, options: JobOptions) -> Action:
    """What to do with one input, given what the journal says about its identity."""
    progress = state.inputs.get(item.ident)
    if progress is None:
        return Action.SEND
    if progress.sha256 is not None and progress.sha256 != item.digest:
        # A key reused with other content: never skip it silently, never resend blindly.
        if _sent_or_maybe(progress):
            return Action.SEND if options.allow_changed else Action.CHANGED
        return Action.SEND  # it failed with the old content: the new one is a new attempt
    if progress.ok:
        return Action.DONE
    if progress.resolved is not None and not options.retry_failed:
        return Action.RESOLVED  # failed, then marked fixed elsewhere (journal resolve)
    if progress.open or progress.kind == "delivery_unknown":
        return Action.RECONCILE
    if not progress.final or options.retry_failed:
        return Action.SEND
    return Action.SKIP_FAILED


@attrs.define
class Plan:
    """What a run of this job does with each input (see the module docstring)."""

    source: JobSource
    state: JournalState
    options: JobOptions
    inputs: int = 0
    bad: dict[int, str] = attrs.Factory(dict)
    actions: Counter[Action] = attrs.Factory(Counter)
    to_settle: list[JobInput] = attrs.Factory(list)
    """Inputs an earlier run left open: read back before deciding to send."""
    changed: list[JobInput] = attrs.Factory(list)
    earlier_failures: list[Failure] = attrs.Factory(list)

    @property
    def bad_lines(self) -> list[tuple[int, str]]:
        return sorted(self.bad.items())

    def sends(
        self,
        overrides: Mapping[str, Action],
        on_skip: Callable[[JobInput, Action], None] | None = None,
    ) -> Iterator[JobInput]:
        """The inputs to send, in file order: the plan's ``SEND``s, plus inputs whose
        read-back (``overrides``) found nothing; ``on_skip`` hears of every other input
        as the walk passes it.  No I/O: the bulk engine pulls it with a plain ``next``."""
        for item in entries(self.source):
            if not isinstance(item, JobInput):
                continue
            action = overrides.get(item.ident) or decide(item, self.state, self.options)
            if action is Action.SEND:
                yield item
            elif on_skip is not None:
                on_skip(item, action)

    def as_json(self, journal: str | None) -> dict[str, object]:
        """The ``--dry-run --json`` object."""
        bad = self.bad_lines
        return {
            "inputs": self.inputs,
            "valid": self.inputs - len(bad),
            "bad": len(bad),
            "badLines": [{"line": n, "reason": r} for n, r in bad],
            "wouldSend": self.actions[Action.SEND],
            "wouldReconcile": self.actions[Action.RECONCILE],
            "alreadyDelivered": self.actions[Action.DONE],
            "previouslyFailed": self.actions[Action.SKIP_FAILED],
            "resolved": self.actions[Action.RESOLVED],
            "changedKeys": [{"line": i.line.number, "key": i.message.key} for i in self.changed],
            "journal": journal,
        }


def _by_digest(state: JournalState) -> dict[str, list[str]]:
    """Identities the journal has as delivered (or maybe delivered), by content hash."""
    found: dict[str, list[str]] = {}
    for ident, progress in state.inputs.items():
        if progress.sha256 is not None and _sent_or_maybe(progress):
            found.setdefault(progress.sha256, []).append(ident)
    return found


def make_plan(source: JobSource, state: JournalState, options: JobOptions) -> Plan:
    """One pass over the job: bad lines, and each input's ``Action`` given ``state``."""
    plan = Plan(source, state, options)
    by_digest = _by_digest(state)
    seen: set[str] = set()
    unrecorded: list[JobInput] = []
    for entry in entries(source):
        plan.inputs += 1
        if not isinstance(entry, JobInput):
            line, problem = entry
            plan.bad[line.number] = problem
            continue
        if entry.ident in state.inputs:
            seen.add(entry.ident)
        elif entry.digest in by_digest:
            unrecorded.append(entry)  # a key added or removed? decided once all are seen
            continue
        _plan_one(plan, entry)
    for entry in unrecorded:
        # The same message (conversation, content) recorded under an identity no line
        # has any more: a key was added to the line, or removed from it.  It is that
        # input, not a new one (adding keys to a half-sent job must not resend it).
        olds = [i for i in by_digest[entry.digest] if i not in seen]
        if olds:
            seen.add(olds[0])
            state.inputs[entry.ident] = state.inputs[olds[0]]
        _plan_one(plan, entry)
    return plan


def _plan_one(plan: Plan, entry: JobInput) -> None:
    """Decide one input's action and note it in ``plan``."""
    action = decide(entry, plan.state, plan.options)
    plan.actions[action] += 1
    if action is Action.RECONCILE:
        plan.to_settle.append(entry)
    elif action is Action.CHANGED:
        plan.changed.append(entry)
    elif action is Action.SKIP_FAILED:
        progress = plan.state.inputs[entry.ident]
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


def _in_use(journal: Path) -> bool:
    """A run holds this journal's lock right now (probed with a shared lock, at once
    released)."""
    if fcntl is None:  # pragma: no cover
        return False
    try:
        fd = os.open(journal, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# -- refusals before anything is sent ------------------------------------------------


def refuse_empty(source: JobSource) -> None:
    """An empty job is a mistake (a wrong file?), not a success: exit 2 before any request."""
    if next(iter(entries(source)), None) is None:
        raise InputError(f"{source.name}: has no inputs (nothing to send)")


def refuse_strict(source: JobSource, err: TextIO) -> None:
    """``--strict``: any bad line refuses the job (exit 2) before any request."""
    bad = sorted((e[0].number, e[1]) for e in entries(source) if not isinstance(e, JobInput))
    if bad:
        print_bad_lines(bad, err, None)
        raise InputError(
            f"{len(bad):,} bad line(s) in {source.name} and --strict: nothing was sent"
        )


def refuse_changed(plan: Plan, journal: str) -> None:
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


def print_bad_lines(bad: list[tuple[int, str]], stream: TextIO, limit: int | None) -> None:
    shown = bad if limit is None else bad[:limit]
    for number, reason in shown:
        print(f"line {number}: {reason}", file=stream)
    if len(bad) > len(shown):
        print(
            f"... and {len(bad) - len(shown):,} more bad lines (--dry-run lists them all)",
            file=stream,
        )


# -- where the journal is ----------------------------------------------------------------


def jobs_directory(env: Mapping[str, str] | None = None) -> Path:
    """This user's ledger: ``${XDG_STATE_HOME:-~/.local/state}/opentrain_async/jobs/``,
    where default journals live (beside ``listen()``'s cursors).  Per user and machine:
    another HOME or container has another one."""
    environ = os.environ if env is None else env
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "opentrain_async" / "jobs"


def default_journal_path(source: JobSource, env: dict[str, str] | None = None) -> Path:
    """Where ``bulk FILE`` journals without ``--journal``: one file per input path in
    ``jobs_directory()``, named after the file plus a hash of its absolute path."""
    return default_journal_for(source.name, env)


def default_journal_for(job_file: str, env: Mapping[str, str] | None = None) -> Path:
    """``default_journal_path`` from the job file's path alone (``journal show FILE``)."""
    absolute = str(Path(job_file).resolve())
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return jobs_directory(env) / f"{Path(absolute).name}-{digest}.journal"


def uses_default_journal(source: JobSource, options: JobOptions) -> bool:
    """The run journals in the per-user ledger (no ``--journal``, not stdin)."""
    return (
        options.journal is None
        and options.journal_store is None
        and not options.no_journal
        and not source.is_stdin
    )


@attrs.frozen
class LedgerFind:
    """Inputs of this job another default journal has as delivered or maybe delivered."""

    count: int
    journal: Path
    input_path: str | None

    def describe(self) -> str:
        return (
            f"{self.count:,} of these inputs were sent (or may have been) by the job of "
            f"{self.input_path} (journal {self.journal}): not sent again (open ones are "
            "read back first)"
        )


async def merge_ledger(
    source: JobSource,
    state: JournalState,
    own: Path,
    api_root: str | None,
    *,
    refuse_running: bool = True,
) -> list[LedgerFind]:
    """What every other default journal of this user says about this job's inputs.

    A journal knows what any run of the same content delivered, whichever file it came
    from: an input this run's own journal would send (never recorded, or failed and not
    final) that another job's journal has as delivered or open is taken as that job
    left it: delivered (skipped) or open (read back before any send).  A failures file
    fed back, a subset or an edited copy of a job, and the original rerun afterwards,
    therefore never send one input twice.  Journals of another API do not count.

    Another job running right now whose journal already shares inputs with this one
    is refused (``refuse_running``): what it has not recorded yet cannot be known."""
    directory = own.parent
    finds: list[LedgerFind] = []
    if not directory.is_dir():
        return finds
    # What the other journals have as sent (or maybe), first journal first: bounded by
    # their records, never a copy of this job.
    known: dict[str, tuple[Progress, int]] = {}
    sources: list[tuple[Path, str | None]] = []
    running: dict[str, int] = {}
    """Identities (any state) in journals of jobs running now -> which journal."""
    for other in sorted(directory.glob("*.journal")):
        if other.name == own.name:
            continue
        try:
            theirs = await load_journal(FileJournalStore(other, read_only=True))
        except (JournalError, OSError):
            continue  # not ours, or unreadable: it says nothing about this job
        was = (theirs.header or {}).get("input") or {}
        if api_root is not None and was.get("apiRoot") not in (None, api_root):
            continue
        state.delivered_ids |= theirs.delivered_ids  # never credit their messages to us
        path = was.get("path")
        sources.append((other, path if isinstance(path, str) else None))
        if refuse_running and _in_use(other):
            for ident, progress in theirs.inputs.items():
                if progress.sha256 is not None:
                    running.setdefault(f"{ident}\x00{progress.sha256}", len(sources) - 1)
        for ident, progress in theirs.inputs.items():
            if progress.sha256 is None or not _sent_or_maybe(progress):
                continue
            seen = known.get(ident)
            if seen is None or (progress.ok and not seen[0].ok):  # delivered beats open
                known[ident] = (progress, len(sources) - 1)
    if not known and not running:
        return finds
    adopted: Counter[int] = Counter()
    for entry in entries(source):
        if not isinstance(entry, JobInput):
            continue
        busy = running.get(f"{entry.ident}\x00{entry.digest}")
        if busy is not None:
            other, path = sources[busy]
            raise JournalError(
                f"the job of {path} (journal {other}) is running now and shares inputs "
                "with this one (line "
                f"{entry.line.number}); nothing was sent. Run this job once it has finished"
            )
        if entry.ident not in known:
            continue
        progress, which = known[entry.ident]
        own_progress = state.inputs.get(entry.ident)
        if progress.sha256 != entry.digest:
            continue
        if own_progress is not None and _sent_or_maybe(own_progress):
            continue
        state.inputs[entry.ident] = attrs.evolve(progress)
        adopted[which] += 1
    for which, count in sorted(adopted.items()):
        other, path = sources[which]
        finds.append(LedgerFind(count, other, path))
    return finds


def journal_path(source: JobSource, options: JobOptions) -> Path | None:
    """The journal file of this job; None without one (``--no-journal``, stdin)."""
    if options.no_journal:
        return None
    if options.journal is not None:
        return options.journal
    if source.is_stdin:
        return None
    return default_journal_path(source)


def journal_store(source: JobSource, options: JobOptions) -> JournalStore | None:
    """Where a real run journals (creating the default directory); None: no journal."""
    if options.journal_store is not None and not options.no_journal:
        return options.journal_store
    path = journal_path(source, options)
    if path is None:
        return None
    if options.journal is None:  # the default place: create its directory
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return FileJournalStore(path)


def input_identity(source: JobSource, api_root: str | None) -> InputIdentity:
    """The job as a journal knows it: its path, its API and, above all, its content."""
    path = "<stdin>" if source.is_stdin else str(Path(source.name).resolve())

    def inputs() -> Iterator[tuple[str, str]]:
        return ((e.ident, e.digest) for e in entries(source) if isinstance(e, JobInput))

    return InputIdentity(path, api_root, job_fingerprint(source), inputs)


async def refuse_moved_job(
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
    path = journal_path(source, options)
    if path is None or path.exists() or not path.parent.is_dir():
        return
    others = sorted(p for p in path.parent.glob("*.journal") if p != path)
    if not others:
        return
    mine = {e.ident: e.digest for e in entries(source) if isinstance(e, JobInput)}
    for other in others:
        try:
            state = await load_journal(FileJournalStore(other, read_only=True))
        except (JournalError, OSError):
            continue  # not ours, or unreadable: it says nothing about this job
        sent = sum(
            1
            for ident, progress in state.inputs.items()
            if mine.get(ident) == progress.sha256 and _sent_or_maybe(progress)
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


# -- --dry-run: the plan, printed ---------------------------------------------------------


async def dry_run(source: JobSource, options: JobOptions, out: TextIO, err: TextIO) -> int:
    """Validate everything and say what a real run would do; send nothing, need no token."""
    refuse_empty(source)
    store = options.journal_store
    path = journal_path(source, options)
    if store is None and path is not None:
        store = FileJournalStore(path, read_only=True)
    await refuse_moved_job(source, options)
    state = JournalState() if store is None else await load_journal(store)
    if path is not None and uses_default_journal(source, options):
        for find in await merge_ledger(source, state, path, None, refuse_running=False):
            print(find.describe(), file=err)
    plan = make_plan(source, state, options)
    journal = None if store is None else store.name
    if options.json:
        print(json.dumps(plan.as_json(journal)), file=out)
    else:
        print_plan(plan, journal, out)
    return EXIT_USAGE if plan.bad or plan.changed else EXIT_OK


def print_plan(plan: Plan, journal: str | None, out: TextIO) -> None:
    """The plan for a terminal: every bad line, every changed key, then one line."""
    print_bad_lines(plan.bad_lines, out, None)
    for item in plan.changed:
        print(
            f"line {item.line.number}: key {item.message.key!r} was sent before with other "
            "content (a real run refuses to start; --allow-changed sends it)",
            file=out,
        )
    bad = len(plan.bad)
    skips = (
        f"journal: {plan.actions[Action.DONE]:,} already delivered, "
        f"{plan.actions[Action.SKIP_FAILED]:,} previously failed"
        + (
            f", {plan.actions[Action.RESOLVED]:,} resolved elsewhere"
            if plan.actions[Action.RESOLVED]
            else ""
        )
        + "; "
        if journal is not None
        else ""
    )
    print(
        f"dry run: {plan.inputs:,} inputs, {plan.inputs - bad:,} valid, {bad:,} bad; "
        f"would send {plan.actions[Action.SEND]:,}, reconcile "
        f"{plan.actions[Action.RECONCILE]:,}; {skips}nothing was sent",
        file=out,
    )
