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
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

import attrs

from ._entries import (
    OUTCOME,
    JobInput,
    entries,
    fed_back_unknown,
    job_fingerprint,
    sent_or_maybe,
)
from ._input import InputError, JobSource
from ._journal import (
    FileJournalStore,
    JournalError,
    JournalState,
    load_journal,
)
from ._ledger import (
    LedgerFind,
    default_journal_for,
    default_journal_path,
    input_identity,
    jobs_directory,
    journal_path,
    journal_store,
    merge_ledger,
    refuse_moved_job,
    uses_default_journal,
)
from ._options import EXIT_OK, EXIT_USAGE, Failure, JobOptions

__all__ = [
    "OUTCOME",
    "Action",
    "JobInput",
    "LedgerFind",
    "Plan",
    "decide",
    "default_journal_for",
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


def decide(item: JobInput, state: JournalState, options: JobOptions) -> Action:
    """What to do with one input, given what the journal says about its identity."""
    progress = state.inputs.get(item.ident)
    if progress is None:
        return Action.SEND
    if progress.sha256 is not None and progress.sha256 != item.digest:
        # A key reused with other content: never skip it silently, never resend blindly.
        if sent_or_maybe(progress):
            return Action.SEND if options.allow_changed else Action.CHANGED
        return Action.SEND  # it failed with the old content: the new one is a new attempt
    if progress.ok:
        return Action.DONE
    if progress.resolved is not None and not options.retry_failed:
        return Action.RESOLVED  # failed, then marked fixed elsewhere (journal resolve)
    if progress.maybe_sent:
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
    maybe_sent: list[JobInput] = attrs.Factory(list)
    """``--failures`` rows of unknown outcome this journal does not know (not sent)."""
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
            "unknownRows": [i.line.number for i in self.maybe_sent],
            "journal": journal,
        }


def _by_digest(state: JournalState) -> dict[str, list[str]]:
    """Identities the journal has as delivered (or maybe delivered), by content hash."""
    found: dict[str, list[str]] = {}
    for ident, progress in state.inputs.items():
        if progress.sha256 is not None and sent_or_maybe(progress):
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
    elif action is Action.SEND and fed_back_unknown(entry.line):
        plan.maybe_sent.append(entry)
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
    """Exit 2 naming the keys delivered (or maybe delivered) with other content, and
    the ``--failures`` rows of unknown outcome this journal does not know."""
    _refuse_maybe_sent(plan)
    if not plan.changed:
        return
    named = ", ".join(
        f"{item.message.key!r} (line {item.line.number}{_moved(plan, item, ', sent to ')})"
        for item in plan.changed[:SHOW_CHANGED]
    )
    more = len(plan.changed) - SHOW_CHANGED
    moved = sum(1 for item in plan.changed if _moved(plan, item, "x"))
    how = (
        "with other content"
        if not moved
        else "to another conversation"
        if moved == len(plan.changed)
        else "with other content or to another conversation"
    )
    raise JournalError(
        f"{len(plan.changed):,} key(s) were sent in an earlier run {how}: "
        f"{named}{f' and {more:,} more' if more > 0 else ''} (journal {journal}). Nothing "
        f"was sent. Restore the original {'line' if moved else 'content'}, give the new "
        "message a new key, or pass --allow-changed to send the new "
        f"{'line' if moved else 'content'} as well"
    )


def _refuse_maybe_sent(plan: Plan) -> None:
    """A failures file fed back under another journal (or none) than its job's: its
    unknown rows may have been delivered, and only that journal can read them back."""
    if not plan.maybe_sent:
        return
    lines = ", ".join(str(item.line.number) for item in plan.maybe_sent[:SHOW_CHANGED])
    more = len(plan.maybe_sent) - SHOW_CHANGED
    raise JournalError(
        f"{len(plan.maybe_sent):,} row(s) of this failures file had an unknown outcome "
        f"(delivery_unknown: they may have been delivered): line {lines}"
        f"{f' and {more:,} more' if more > 0 else ''}. Nothing was sent. Run it with the "
        "--journal of the job that wrote it (it reads them back first), or remove those "
        "rows once you have checked their conversations"
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
    return EXIT_USAGE if plan.bad or plan.changed or plan.maybe_sent else EXIT_OK


def _moved(plan: Plan, item: JobInput, prefix: str) -> str:
    """``prefix`` + the conversation a reused key was sent to, when the line now names
    another one (the content may be the same: "other content" would mislead); else ""."""
    before = plan.state.inputs[item.ident].conversation_id
    if before is None or before == item.message.conversation_id:
        return ""
    return f"{prefix}{before}"


def print_plan(plan: Plan, journal: str | None, out: TextIO) -> None:
    """The plan for a terminal: every bad line, every changed key, then one line."""
    print_bad_lines(plan.bad_lines, out, None)
    for item in plan.changed:
        moved = _moved(plan, item, "to ")
        print(
            f"line {item.line.number}: key {item.message.key!r} was sent before "
            f"{moved or 'with other content'} (a real run refuses to start; "
            "--allow-changed sends it)",
            file=out,
        )
    for item in plan.maybe_sent:
        print(
            f"line {item.line.number}: a failures row whose outcome was unknown "
            "(delivery_unknown), not in this journal (a real run refuses to start; run it "
            "with the --journal of the job that wrote it)",
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
