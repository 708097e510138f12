"""One bulk job, start to finish: plan, run, summary.

1. ``_plan``: the job is read (once) and validated; ``--strict`` refuses bad lines, a
   moved job file is refused, and (with the journal open) every input is matched
   against the journal: what is sent, what is already delivered, what an earlier run
   left open, what is refused (a key sent before with other content).  ``--dry-run``
   prints this plan and stops, with no token and no request;
2. ``_run``: one client checks the token can send, reads back what an earlier run left
   open and sends the rest through the SDK's bulk engine, journaling each input;
3. ``_summary``: the run's ``BulkReport`` with the plan's figures, as a table,
   ``--json`` and ``--failures``; the exit code.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TextIO

from opentrain_async import Settings

from ._content_lock import ContentLock
from ._input import InputError, JobSource
from ._journal import (
    FileJournalStore,
    Journal,
    JournalError,
    JournalState,
    JournalStore,
    open_journal,
)
from ._journal_redis import RedisJournalStore
from ._options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_START,
    EXIT_USAGE,
    Failure,
    Interrupted,
    JobOptions,
    StartError,
)
from ._plan import (
    default_journal_path,
    dry_run,
    input_identity,
    job_fingerprint,
    jobs_directory,
    journal_path,
    journal_store,
    make_plan,
    merge_ledger,
    print_bad_lines,
    refuse_changed,
    refuse_empty,
    refuse_moved_job,
    refuse_strict,
    uses_default_journal,
)
from ._run import Runner
from ._summary import JobResult, check_failures_path, print_summary, write_failures

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_START",
    "EXIT_USAGE",
    "Failure",
    "InputError",
    "Interrupted",
    "JobOptions",
    "JobResult",
    "JournalError",
    "StartError",
    "default_journal_path",
    "dry_run",
    "execute",
    "print_summary",
    "run_job",
    "write_failures",
]

SHOW_BAD_LINES = 20
"""Bad lines listed on a real run (``--dry-run`` lists them all)."""


async def run_job(
    source: JobSource,
    options: JobOptions,
    settings: Settings,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run a bulk job and print its summary; returns the exit code (raises
    ``InputError``, ``JournalError``, ``StartError`` for the caller to report).
    ``out``/``err``: ``sys.stdout``/``sys.stderr`` as they are when called."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if options.failures is not None:
        check_failures_path(options.failures, source, journal_path(source, options))
    result = await execute(source, options, settings, err=err)
    print_summary(result, options, out, err)
    if options.failures is not None:
        try:
            written = write_failures(options.failures, source, result)
        except OSError as exc:
            # After the sends (disk full, its directory removed): the summary above and
            # the journal hold the run; name the file and where the failures are, exit
            # 1, not a bare "I/O error" exit 2 (a usage error) naming a temporary file.
            # An old file there would be taken for this run's failures: it goes.
            with contextlib.suppress(OSError):
                options.failures.unlink()
            kept = (
                "the summary above lists the first ones"
                if result.journal is None or result.journal_gone
                else f"the journal keeps them all (opentrain-async journal export {result.journal})"
            )
            print(
                f"opentrain-async: error: could not write --failures {options.failures}: "
                f"{exc.strerror or exc}; {kept}",
                file=err,
            )
            return max(result.exit_code(), EXIT_FAILED)
        if written:
            print(f"{written:,} input(s) not delivered written to {options.failures}", file=err)
    return result.exit_code()


async def execute(
    source: JobSource,
    options: JobOptions,
    settings: Settings,
    *,
    err: TextIO | None = None,
    preflight: bool = True,
) -> JobResult:
    """Plan and run a bulk job (see the module docstring) and return its figures."""
    err = sys.stderr if err is None else err
    store = journal_store(source, options)
    if store is None and source.is_stdin and not options.no_journal:
        print(
            "reading stdin without --journal: this run cannot be resumed (a rerun would "
            "send every input again)",
            file=err,
        )
    refuse_empty(source)
    if options.strict:  # refuse before any request
        refuse_strict(source, err)
    with _content_lock(source, store):
        # Under the lock: a twin run of the same content cannot be between this check
        # and its first send.
        await refuse_moved_job(source, options, settings.api_root)
        return await _locked(source, options, settings, store, err, preflight)


def _content_lock(
    source: JobSource, store: JournalStore | None
) -> contextlib.AbstractContextManager[object]:
    """A journaled run holds its content's lock (``_content_lock``).  A Redis journal's
    lease is the lock of its name on every machine; the content lock also keeps it from
    running beside a file-journaled run (or one under another job name) on this machine,
    when the per-user directory can be written (else the lease alone)."""
    if store is None:
        return contextlib.nullcontext()
    file_store = store.path.parent if isinstance(store, FileJournalStore) else None
    try:
        directory = jobs_directory() / "locks"
    except JournalError:  # no home directory: a file's lock goes beside its journal
        if file_store is None:
            return contextlib.nullcontext()
        directory = file_store
    return ContentLock(
        directory,
        job_fingerprint(source),
        source.name,
        fallback=file_store,
        required=file_store is not None,
    )


async def _locked(
    source: JobSource,
    options: JobOptions,
    settings: Settings,
    store: JournalStore | None,
    err: TextIO,
    preflight: bool,
) -> JobResult:
    async with Runner(options, settings, store, err) as runner:
        with runner.signals_handled():  # from here on, SIGINT/SIGTERM end with a summary
            if preflight:  # before the journal: a server that is not the API is exit 3, first
                await runner.stoppable(runner.preflight())
            journal: Journal | None = None
            state = JournalState()
            if store is not None:
                journal, state = await runner.stoppable(
                    open_journal(
                        store,
                        input_identity(source, settings.api_root),
                        reuse=options.reuse_journal,
                        clock=options.clock,
                    )
                )
            try:
                if state.note is not None:
                    runner.note(state.note)
                ledger = isinstance(store, FileJournalStore) and journal is not None
                if ledger and uses_default_journal(source, options):
                    assert isinstance(store, FileJournalStore)
                    finds = await merge_ledger(source, state, store.path, settings.api_root)
                    for find in finds:
                        runner.note(find.describe())
                plan = make_plan(source, state, options)
                refuse_changed(plan, "" if journal is None else journal.name)
                if plan.bad:
                    print_bad_lines(plan.bad_lines, err, SHOW_BAD_LINES)
                if isinstance(store, RedisJournalStore) and store.took_over is not None:
                    runner.note(
                        f"{store.url.where}: took over the lease of a run that is gone "
                        f"({store.took_over.describe()})"
                    )
                if journal is not None and state.torn_tail:
                    print(
                        f"journal {journal.name}: ignored a partial last line (the previous "
                        "run was killed while writing it)",
                        file=err,
                    )
                if journal is not None:
                    await journal.run_started(source.name)
                    runner.note(_where(journal.name, uses_default_journal(source, options)))
                return await runner.run(plan, journal)
            finally:
                if journal is not None:
                    await journal.aclose()


def _where(name: str, default: bool) -> str:
    """The journal this run records in (printed at the start)."""
    if default:
        return (
            f"journal {name} (the default: per user and machine; another HOME or "
            "container does not see it, pass --journal to share one)"
        )
    return f"journal {name}"
