"""``opentrain-async journal show|export|resolve LOCATION``: a bulk job's journal, for
operators.

LOCATION is a journal file or a ``redis://`` / ``rediss://`` journal URL (or, for a file,
the job file: its default journal).  ``show`` and ``export`` only read: they take no lock
and no lease, so they work while the job runs.  ``resolve`` marks failed inputs as fixed
elsewhere (sent by hand, or from another file), so the job's next run counts them as done
and exits 0; it takes the journal's lock or lease like a run, so not while one runs.  ``show``
summarises (inputs delivered, failed by reason, left open, the runs, who holds the job
now and when its records expire); ``export`` prints every record as JSON Lines, the file
journal's own format, so an export of a Redis journal is a file journal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from opentrain_async._json import json_loads  # deep nesting: ValueError, no crash

from ._journal import (
    FileJournalStore,
    JournalError,
    JournalState,
    JournalStore,
    StoredRecords,
    _read,
    _replay,
)
from ._journal_file import first_record
from ._journal_redis import (
    JobInfo,
    RedisJournalStore,
    RedisJournalURL,
    encode_record,
    is_redis_url,
    read_job,
)
from ._plan import default_journal_for

__all__ = ["add_journal_parser", "journal_command"]

SHOW_RUNS = 5
PROG = "opentrain-async"


def add_journal_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """The ``journal`` command and its ``show`` and ``export`` actions."""
    journal = commands.add_parser(
        "journal",
        parents=[common],
        help="show or export a bulk job's journal (a file or redis://...?job=NAME)",
        description="Read a bulk job's journal without touching it: a file, or "
        "redis://host:6379/0?job=NAME (rediss:// for TLS).",
    )
    actions = journal.add_subparsers(dest="journal_action", metavar="ACTION")
    actions.required = True
    show = actions.add_parser(
        "show", help="summary: delivered, failed by reason, open, runs, holder, expiry"
    )
    show.add_argument(
        "location", metavar="PATH|URL", help="a journal, or a job file (its default journal)"
    )
    show.add_argument("--json", action="store_true", help="one JSON object on stdout")
    resolve = actions.add_parser(
        "resolve",
        help="mark failed inputs as fixed elsewhere: the job's next run exits 0 for them",
        description="Mark inputs that failed for good as fixed elsewhere (sent by hand, or "
        "from a corrected file), so the job's next run counts them as done instead of "
        "failed, and says so. --retry-failed still resends them. Not while the job runs.",
    )
    resolve.add_argument(
        "location", metavar="PATH|URL", help="a journal, or a job file (its default journal)"
    )
    which = resolve.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--line", type=int, action="append", metavar="N", help="the failed input on line N"
    )
    which.add_argument(
        "--key", action="append", metavar="KEY", help="the failed input with this key"
    )
    which.add_argument("--all-failed", action="store_true", help="every failed input")
    resolve.add_argument("--note", default="resolved", help="why (kept in the journal)")
    export = actions.add_parser("export", help="every record as JSON Lines (the file format)")
    export.add_argument(
        "location", metavar="PATH|URL", help="a journal, or a job file (its default journal)"
    )


async def journal_command(args: argparse.Namespace, out: TextIO, err: TextIO | None = None) -> int:
    """Run ``journal show`` or ``journal export``; returns the exit code.  A job file given
    instead of a journal stands for its default journal (a note on `err` says which)."""
    location: str = args.location
    if args.journal_action == "resolve":
        return await _resolve(args, out)
    info: JobInfo | None = None
    torn = False
    if is_redis_url(location):
        url = RedisJournalURL.parse(location)
        where = url.redacted()
        records, info = await read_job(url)
        if not records and info.holder is None:
            raise JournalError(f"no journal for {url.where}: never run, or its records expired")
    else:
        path = _journal_of(Path(location), err)
        where = str(path)
        records, torn = _file_records(path)
    state = _replay(where, StoredRecords(records, torn))  # refuses what is not ours
    if args.journal_action == "export":
        try:
            for record in records:
                out.write(encode_record(record).decode("utf-8", "surrogatepass") + "\n")
            out.flush()
        except BrokenPipeError:  # `journal export ... | head`: the reader has enough
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    summary = _summarise(where, records, state, info)
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        _print_summary(summary, out)
    return 0


async def _resolve(args: argparse.Namespace, out: TextIO) -> int:
    """Append a ``resolved`` record for each chosen input that failed for good."""
    store: JournalStore
    if is_redis_url(args.location):
        store = RedisJournalStore(RedisJournalURL.parse(args.location))
    else:
        store = FileJournalStore(_journal_of(Path(args.location), None))  # named below
    await store.open()  # the lock or the lease: refuses while the job runs
    try:
        state = await _read(store)
        failed = {
            ident: p
            for ident, p in state.inputs.items()
            if not p.ok and not p.maybe_sent and p.resolved is None
        }
        labels: dict[str, str]  # identity -> how the user named it
        if args.all_failed:
            labels = {ident: ident for ident in failed}
        elif args.key:
            labels = {f"key:{key}": f"key {key!r}" for key in args.key}
        else:
            by_line = {p.line: ident for ident, p in state.inputs.items() if p.line is not None}
            labels = {by_line.get(n, f"line {n}"): f"line {n}" for n in args.line}
        chosen = list(labels)
        not_failed = [labels[c] for c in chosen if c not in failed]
        if not_failed:
            raise JournalError(
                f"{not_failed[0]} is not a failed input of journal {store.name} (delivered, "
                "unknown, already resolved or never run); nothing was changed. "
                f"`{PROG} journal show` lists the failures"
            )
        now = time.time()
        records = [{"event": "resolved", "id": i, "note": args.note, "at": now} for i in chosen]
        if records:
            await store.append(records)
    finally:
        await store.close()
    print(
        f"resolved {len(chosen):,} failed input(s) in {store.name}: the job's next run "
        "counts them as done (exit 0 if nothing else fails); --retry-failed still resends them",
        file=out,
    )
    return 0


def _journal_of(path: Path, err: TextIO | None) -> Path:
    """`path` if it is a journal (or cannot be read: the reader says why), else the
    default journal of the job file at `path`."""
    try:
        header = first_record(path)
    except OSError:
        return path
    if isinstance(header, dict) and ("journal" in header or "event" in header):
        return path  # ours, or an older format the replay explains
    journal = default_journal_for(str(path))
    if not journal.exists():
        raise JournalError(
            f"{path} is not a journal written by opentrain-async, and as a job file it has "
            "no default journal "
            f"({journal} does not exist): it was never run from this path, or ran with "
            "--journal PATH|URL or --no-journal. Give the journal itself: "
            "opentrain-async journal show PATH|URL"
        )
    if err is not None:
        print(f"{path} is a job file: showing its default journal {journal}", file=err)
    return journal


def _file_records(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """A journal file's records (no lock: the job may be running) and whether a torn
    last line (a killed writer) was left out."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise JournalError(f"no journal at {path}") from None
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    lines = raw.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            record = json_loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise JournalError(f"journal {path} is corrupt at line {number} ({exc})") from None
        records.append(record)
    return records, bool(lines[-1].strip())


def _when(at: float | None) -> str | None:
    return None if at is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _summarise(
    where: str, records: list[dict[str, Any]], state: JournalState, info: JobInfo | None
) -> dict[str, Any]:
    delivered = sum(1 for p in state.inputs.values() if p.ok)
    open_ = sum(1 for p in state.inputs.values() if p.open and not p.ok)
    failed: Counter[str] = Counter(
        p.kind or "error" for p in state.inputs.values() if not p.ok and not p.open
    )
    runs = [
        {k: r[k] for k in ("at", "host", "pid", "lease", "input", "version") if k in r}
        for r in records
        if r.get("event") == "run"
    ]
    last = max(
        (float(r["at"]) for r in records if isinstance(r.get("at"), int | float)), default=None
    )
    header = state.header or {}
    summary: dict[str, Any] = {
        "journal": where,
        "input": (header.get("input") or {}).get("path"),
        "records": len(records),
        "lastWriteAt": _when(last),
        "runs": runs,
        "inputs": len(state.inputs),
        "delivered": delivered,
        "failed": sum(failed.values()),
        "failedByReason": dict(sorted(failed.items())),
        "open": open_,
    }
    if info is not None:
        holder = info.holder
        summary["running"] = (
            None
            if holder is None
            else {
                "host": holder.host,
                "pid": holder.pid,
                "since": _when(holder.since),
                "lease": holder.token,
                "expiresInSeconds": holder.expires_in,
            }
        )
        summary["recordsExpireInSeconds"] = info.records_ttl
    return summary


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {rest // 60}m" if hours else f"{rest // 60}m {rest % 60}s"


def _print_summary(s: dict[str, Any], out: TextIO) -> None:
    print(f"journal   {s['journal']}", file=out)
    print(f"input     {s['input'] or '-'}", file=out)
    print(
        f"records   {s['records']:,} in {len(s['runs']):,} run(s); last write "
        f"{s['lastWriteAt'] or '-'}",
        file=out,
    )
    for run in s["runs"][-SHOW_RUNS:]:
        place = f"host {run['host']}, " if "host" in run else ""
        print(
            f"  run     {_when(run.get('at'))}  {place}pid {run.get('pid', '?')}  "
            f"{run.get('input', '')}",
            file=out,
        )
    reasons = ", ".join(f"{k} {v:,}" for k, v in s["failedByReason"].items())
    print(
        f"inputs    {s['inputs']:,}: delivered {s['delivered']:,}, failed {s['failed']:,}"
        + (f" ({reasons})" if reasons else "")
        + f", open {s['open']:,}",
        file=out,
    )
    if s["open"]:
        print(
            "          open = started, outcome not recorded: the next run reads their "
            "conversations back before deciding to send",
            file=out,
        )
    if "running" in s:
        running = s["running"]
        if running is None:
            print("running   no (nobody holds the job's lease)", file=out)
        else:
            left = running["expiresInSeconds"]
            print(
                f"running   host {running['host']}, pid {running['pid']}, since "
                f"{running['since']} (lease #{running['lease']}"
                + (f", expires in {left:.0f} s unless renewed" if left is not None else "")
                + ")",
                file=out,
            )
        ttl = s["recordsExpireInSeconds"]
        print(f"expires   {'in ' + _duration(ttl) if ttl is not None else 'never'}", file=out)
