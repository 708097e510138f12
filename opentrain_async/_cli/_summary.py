"""The end of a bulk job: its figures (``JobResult``), the table, ``--json`` and
``--failures``.

This run's outcomes are a ``BulkReport`` (the SDK's own accounting: delivered,
reconciled, failed by reason); the plan adds what the run did not send (bad lines,
inputs skipped as delivered or as failed earlier) and the client its request counts.
Nothing here sends or reads the journal.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import stat
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import attrs
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opentrain_async import BulkReport

from ._input import InputError, JobSource
from ._journal import MARK
from ._journal_file import first_record
from ._options import EXIT_FAILED, EXIT_OK, EXIT_START, Failure, JobOptions
from ._plan import OUTCOME, JobInput, entries
from ._progress import clip_to_terminal
from ._read import terminal_safe

__all__ = [
    "OUTCOME_FIELDS",
    "JobResult",
    "check_failures_path",
    "print_summary",
    "signal_name",
    "write_failures",
]

SHOW_FAILURES = 10
"""Failures listed under the summary table (``--json`` and ``--failures`` have them all)."""


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@attrs.define
class JobResult:
    """The figures of one run, for the table, ``--json`` and the exit code."""

    report: BulkReport = attrs.Factory(lambda: BulkReport(keep_failures=0))
    """This run's outcomes: its sends, and the read-back of inputs an earlier run left
    open (``failures`` keeps the failed ones with their line, so the report keeps none)."""
    inputs: int = 0
    bad_lines: list[tuple[int, str]] = attrs.Factory(list)
    skipped_delivered: int = 0
    skipped_failed: int = 0
    resolved: int = 0
    """Earlier failures marked fixed elsewhere (``journal resolve``): counted as done."""
    failures: list[Failure] = attrs.Factory(list)
    """Every input not delivered: earlier runs' failures skipped by this one, then this
    run's, in the order they came."""
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
    journal_gone: bool = False
    """The journal's store lost every record mid-run (Redis restarted empty)."""

    @property
    def sent(self) -> int:
        """Delivered by this run's sends (read-back's finds are ``reconciled``)."""
        return self.report.sent - self.report.reconciled

    @property
    def reconciled(self) -> int:
        return self.report.reconciled

    @property
    def unknown(self) -> int:
        return self.report.by_reason["delivery_unknown"]

    @property
    def failed(self) -> Counter[str]:
        """Inputs not delivered by reason (bad lines are ``invalid``), unknown outcomes
        and earlier runs' failures aside."""
        failed = Counter(self.report.by_reason)
        del failed["delivery_unknown"]
        if self.bad_lines:
            failed["invalid"] += len(self.bad_lines)
        return failed

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def delivered(self) -> int:
        return self.report.sent + self.skipped_delivered

    @property
    def elapsed(self) -> float:
        return self.report.elapsed

    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.stopped is not None and self.report.sent == 0:
            return EXIT_START
        if self.delivered + self.resolved == self.inputs and self.stopped is None:
            return EXIT_OK
        return EXIT_FAILED

    def as_json(self) -> dict[str, Any]:
        rate = self.report.sent / self.elapsed if self.elapsed > 0 else 0.0
        return {
            "inputs": self.inputs,
            "delivered": self.delivered,
            "sent": self.sent,
            "reconciled": self.reconciled,
            "skipped": {"delivered": self.skipped_delivered, "failed": self.skipped_failed},
            "resolved": self.resolved,
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
            "interrupted": None if self.interrupted is None else signal_name(self.interrupted),
            "journal": self.journal,
            "exitCode": self.exit_code(),
        }


def summary_table(result: JobResult) -> Table:
    table = Table(title="bulk summary", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("count", justify="right")
    table.add_column("note")
    table.add_row("inputs", f"{result.inputs:,}", "")
    table.add_row("sent", f"{result.sent:,}", "delivered by this run")
    if result.reconciled:
        table.add_row(
            "reconciled", f"{result.reconciled:,}", "outcome was unknown; found by read-back"
        )
    table.add_row(
        "skipped",
        f"{result.skipped_delivered + result.skipped_failed:,}",
        f"already in the journal: {result.skipped_delivered:,} delivered, "
        f"{result.skipped_failed:,} failed"
        + (" (--retry-failed resends those)" if result.skipped_failed else ""),
    )
    if result.resolved:
        table.add_row(
            "resolved",
            f"{result.resolved:,}",
            "failed earlier, marked fixed elsewhere (journal resolve): counted as done",
        )
    failed = result.failed
    table.add_row("failed", f"{sum(failed.values()):,}", "not delivered")
    for kind, count in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0])):
        # The kind is the server's details.reason: text, never rich markup ("[/bold]").
        table.add_row(f"  {escape(terminal_safe(kind))}", f"{count:,}", "")
    table.add_row("unknown", f"{result.unknown:,}", "may or may not have been delivered")
    if result.not_started:
        table.add_row("not started", f"{result.not_started:,}", "the run stopped first")
    rate = result.report.sent / result.elapsed if result.elapsed > 0 else 0.0
    table.add_row("elapsed", f"{result.elapsed:,.1f} s", "")
    table.add_row("effective rate", f"{rate:,.0f} msg/s", f"pace at the end: {result.pace}")
    table.add_row(
        "requests",
        f"{result.requests:,}",
        f"{result.rate_limited:,} answered 429, {result.retries:,} retries",
    )
    return table


def _print_failures(result: JobResult, stream: TextIO, options: JobOptions) -> None:
    failures = sorted(result.failures, key=lambda f: f.line)
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


def _how_to_resume(result: JobResult, stream: TextIO) -> None:
    if result.interrupted is None and result.stopped is None:
        if result.journal is not None:
            print(
                f"journal {result.journal}: a rerun with this journal sends nothing it "
                "recorded as delivered",
                file=stream,
            )
        return
    if result.stopped:
        print(f"stopped early: {result.stopped}", file=stream)
    if result.interrupted is not None:
        print(
            f"interrupted by {signal_name(result.interrupted)}: no new sends were started",
            file=stream,
        )
    if result.journal_gone:
        print(
            f"journal {result.journal} is gone: a rerun sends every input again, "
            "delivered ones included",
            file=stream,
        )
    elif result.journal is not None:
        print(
            f"journal {result.journal}: rerun the same command to resume; nothing "
            "delivered is sent again",
            file=stream,
        )
    else:
        print(
            "no journal (--no-journal or stdin): a rerun would send every input again",
            file=stream,
        )


def print_summary(result: JobResult, options: JobOptions, out: TextIO, err: TextIO) -> None:
    """The table and failures (stdout; stderr with ``--json``) and the JSON (stdout)."""
    stream = err if options.json else out
    console = Console(file=stream, width=100 if not stream.isatty() else None)
    console.print(summary_table(result))
    _print_failures(result, stream, options)
    _how_to_resume(result, err)
    if options.json:
        print(json.dumps(result.as_json()), file=out, flush=True)


OUTCOME_FIELDS = ("line", "reason", "error", "id")
"""A ``--failures`` row's outcome: under ``"opentrain"`` (JSONL) or ``opentrain.*``
columns (CSV), so the input's own columns (``line``, ``reason``, ...) stay as they were.
``id`` is the input's identity in its job: fed back, the row is that same input."""


def check_failures_path(path: Path, source: JobSource, journal: Path | None = None) -> None:
    """Before anything is sent: ``--failures`` must not be the job file itself nor the
    journal (under any path), and must be writable (else the failures of a run already
    sent would be lost).  Creates nothing (a probe file beside it is removed at once)."""
    mine = [("the job file itself", Path(source.name))] if not source.is_stdin else []
    if journal is not None:
        mine.append(("this job's journal", journal))
    for what, other in mine:
        if _same_file(path, other):
            raise InputError(
                f"--failures {path} is {what}: it would be overwritten. Nothing was sent; "
                "name another file"
            )
    if path.is_dir():
        raise InputError(f"--failures {path} is a directory; nothing was sent")
    with contextlib.suppress(OSError):  # not there yet: fine (the probe below checks)
        if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/null: renamed over, or removed
            raise InputError(
                f"--failures {path} is not a regular file (a device, FIFO or socket); "
                "nothing was sent. Name a file, or leave --failures out"
            )
    if _holds_a_journal(path):
        raise InputError(
            f"--failures {path} is a journal of opentrain-async (another job's): it would be "
            "overwritten or removed, and that job could not resume. Nothing was sent; name "
            "another file"
        )
    try:  # the file is written beside itself and renamed over: its directory must take it
        fd, probe = tempfile.mkstemp(prefix=f".{path.name[:100]}.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(
            f"--failures {path} cannot be written ({exc.strerror or exc}); nothing was sent"
        ) from None


def _holds_a_journal(path: Path) -> bool:
    """Whether ``path`` starts with a journal header of ours (``_journal.MARK``): a run
    replaces the failures file, or removes it when there are none, and either would lose
    that job's record of what it delivered.  Only the first line is read (a header is
    well under a MiB: ``first_record``); unreadable or not JSON: not a journal."""
    try:
        header = first_record(path)
    except OSError:
        return False
    return isinstance(header, dict) and header.get("journal") == MARK


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def write_failures(path: Path, source: JobSource, result: JobResult) -> int:
    """Write every input not delivered (bad lines included) to ``path`` in the input's
    format, each with its outcome (``OUTCOME_FIELDS``): fix it and feed it back.
    Returns how many were written.  The rows come from the same bytes the run read, so
    a file edited meanwhile cannot put another line's text under a failure.  The file
    is written whole and renamed into place, mode 0600 (it holds message content)."""
    by_line = {f.line: f for f in result.failures}
    for number, reason in result.bad_lines:
        by_line.setdefault(number, Failure(number, "invalid", reason))
    if not by_line:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # an old failures file must not be taken for this run's
        return 0
    idents = {e.line.number: e.ident for e in entries(source) if isinstance(e, JobInput)}
    csv_format = source.format == "csv"
    rows: list[dict[str, Any]] = []
    for line in source.lines():
        failure = by_line.get(line.number)
        if failure is None:
            continue
        record: dict[str, Any] = {
            k: v
            for k, v in (line.record or {}).items()
            if k != OUTCOME and not k.startswith(f"{OUTCOME}.")  # an earlier round's
        }
        if line.raw is not None and not record:
            record["raw"] = line.raw
        outcome = {"line": line.number, "reason": failure.reason, "error": failure.error}
        if line.number in idents:
            outcome["id"] = idents[line.number]
        if csv_format:
            record.update({f"{OUTCOME}.{k}": v for k, v in outcome.items()})
        else:
            record[OUTCOME] = outcome
        rows.append(record)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name[:100]}.", dir=path.parent or Path("."))
    try:
        # A lone surrogate (half an emoji: a bad line's "\ud83d", or in a server's error
        # text) cannot be UTF-8: written as that escape, valid JSON for the same string;
        # strict, it raised after the run and the whole file was lost.
        with open(fd, "w", encoding="utf-8", newline="", errors="backslashreplace") as handle:
            if csv_format:
                fields = ["conversationId", "content", "key"]
                fields += [f"{OUTCOME}.{k}" for k in OUTCOME_FIELDS]
                extra = sorted({k for r in rows for k in r} - set(fields))
                writer = csv.DictWriter(handle, fieldnames=fields + extra)
                writer.writeheader()
                writer.writerows(rows)
            else:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return len(rows)
