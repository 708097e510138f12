"""Where a bulk job's journal is, and what the user's other journals say about it.

Default journals live in one per-user directory (the ledger, ``jobs_directory``); a
job's own journal is found there by its path.  Every other default journal counts: an
input another job delivered is not sent again (``merge_ledger``), a moved or renamed
job is refused rather than sent twice (``refuse_moved_job``), and another job running
now that shares inputs is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from opentrain_async._config import home_directory

from ._entries import JobInput, entries, job_fingerprint, sent_or_maybe
from ._input import JobSource
from ._journal import (
    FileJournalStore,
    InputIdentity,
    JournalError,
    JournalState,
    JournalStore,
    Progress,
    load_journal,
)
from ._options import JobOptions

__all__ = [
    "LedgerFind",
    "default_journal_for",
    "default_journal_path",
    "input_identity",
    "jobs_directory",
    "journal_path",
    "journal_store",
    "merge_ledger",
    "refuse_moved_job",
    "uses_default_journal",
]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def jobs_directory(env: Mapping[str, str] | None = None) -> Path:
    """This user's ledger: ``${XDG_STATE_HOME:-~/.local/state}/opentrain_async/jobs/``,
    where default journals live (beside ``listen()``'s cursors).  Per user and machine:
    another HOME or container has another one."""
    environ = os.environ if env is None else env
    state = environ.get("XDG_STATE_HOME")
    if not state:
        home = home_directory()
        if home is None:
            raise JournalError(
                "the default journal lives under ~/.local/state, and there is no home "
                "directory here: set XDG_STATE_HOME, or pass --journal"
            )
        state = str(home / ".local" / "state")
    return Path(state) / "opentrain_async" / "jobs"


def default_journal_path(source: JobSource, env: dict[str, str] | None = None) -> Path:
    """Where ``bulk FILE`` journals without ``--journal``: one file per input path in
    ``jobs_directory()``, named after the file plus a hash of its absolute path."""
    return default_journal_for(source.name, env)


def default_journal_for(job_file: str, env: Mapping[str, str] | None = None) -> Path:
    """``default_journal_path`` from the job file's path alone (``journal show FILE``)."""
    absolute = str(Path(job_file).resolve())
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    name = Path(absolute).name
    if len(f"{name}-{digest}.journal".encode("utf-8", "surrogatepass")) > 255:
        name = name[:100]  # over the file system's limit: never a journal's name before
    return jobs_directory(env) / f"{name}-{digest}.journal"


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
    if not own.parent.is_dir():
        return []
    others = await _other_journals(own, state, api_root, refuse_running)
    if not others.known and not others.running:
        return []
    adopted: Counter[int] = Counter()
    for entry in entries(source):
        if not isinstance(entry, JobInput):
            continue
        busy = others.running.get(f"{entry.ident}\x00{entry.digest}")
        if busy is not None:
            other, path = others.sources[busy]
            raise JournalError(
                f"the job of {path} (journal {other}) is running now and shares inputs "
                "with this one (line "
                f"{entry.line.number}); nothing was sent. Run this job once it has finished"
            )
        if entry.ident not in others.known:
            continue
        progress, which = others.known[entry.ident]
        own_progress = state.inputs.get(entry.ident)
        if progress.sha256 != entry.digest:
            continue
        if own_progress is not None and sent_or_maybe(own_progress):
            continue
        state.inputs[entry.ident] = attrs.evolve(progress)
        adopted[which] += 1
    return [LedgerFind(count, *others.sources[which]) for which, count in sorted(adopted.items())]


@attrs.define
class _OtherJournals:
    """What the user's other default journals hold, first journal first: bounded by
    their records, never a copy of this job."""

    known: dict[str, tuple[Progress, int]] = attrs.Factory(dict)
    """Identities sent (or maybe) -> their progress and which journal (``sources``)."""
    sources: list[tuple[Path, str | None]] = attrs.Factory(list)
    """Each journal read, with its job's input path."""
    running: dict[str, int] = attrs.Factory(dict)
    """Identities (any state) in journals of jobs running now -> which journal."""


async def _other_journals(
    own: Path, state: JournalState, api_root: str | None, refuse_running: bool
) -> _OtherJournals:
    """Read every other default journal beside ``own`` of this API (their delivered
    message ids join ``state``'s: never credited to this job)."""
    found = _OtherJournals()
    for other in sorted(own.parent.glob("*.journal")):
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
        found.sources.append((other, path if isinstance(path, str) else None))
        which = len(found.sources) - 1
        if refuse_running and _in_use(other):
            for ident, progress in theirs.inputs.items():
                if progress.sha256 is not None:
                    found.running.setdefault(f"{ident}\x00{progress.sha256}", which)
        for ident, progress in theirs.inputs.items():
            if progress.sha256 is None or not sent_or_maybe(progress):
                continue
            seen = found.known.get(ident)
            if seen is None or (progress.ok and not seen[0].ok):  # delivered beats open
                found.known[ident] = (progress, which)
    return found


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:  # a read-only HOME (a container): say what it was for
            raise JournalError(
                f"cannot create the default journal's directory {path.parent}: "
                f"{exc.strerror or exc}; set XDG_STATE_HOME to a writable directory, "
                "or pass --journal PATH (or --no-journal)"
            ) from None
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
            if mine.get(ident) == progress.sha256 and sent_or_maybe(progress)
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
