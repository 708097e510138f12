"""The bulk journal: what makes a job crash-safe, and where its records are stored.

Two layers, so that the storage can change without touching the job logic:

* ``Journal`` (this module's logic): the header that marks a journal as ours, input
  identity, the records of a run, replaying them into a ``JournalState``, and group
  commit (one durable write covers every record queued before it).
* ``JournalStore`` (a small Protocol, ``_journal_store``): where the records live.
  ``FileJournalStore`` (``_journal_file``) is the default (JSON Lines, ``fsync``);
  another store (Redis, say) implements the same five methods and plugs in unchanged.

The records, one JSON object each::

    {"journal": "opentrain-async", "format": 2, "input": {"path": "/jobs/batch7.jsonl",
     "apiRoot": "https://app.opentrain.ai/api/public/v1"}, "version": "0.1.0", "at": …}
    {"event": "run", "at": 1760000000.1, "pid": 4242, "version": "0.1.0"}
    {"event": "started", "id": "key:invoice-7", "line": 3, "conversationId": "conv_1",
     "sha256": "…", "at": 1760000000.2}
    {"event": "ended", "id": "key:invoice-7", "ok": true, "messageId": "msg_9", "at": …}
    {"event": "ended", "id": "c:…:1", "ok": false, "kind": "read_only_conversation",
     "code": "CONFLICT", "status": 409, "error": "…", "final": true, "at": …}
    {"event": "resolved", "id": "c:…:1", "note": "sent by hand", "at": …}

The first record is the header.  A store whose first record is not a header of ours is
never written to, truncated or "repaired": the journal refuses it.

An input's identity is its ``key`` when it has one (``key:<key>``), else its content:
``c:<sha256>:<n>``, the SHA-256 of ``conversationId`` NUL ``content`` and which
occurrence of that pair in the file it is (1, 2, ...).  Inserting, deleting or reordering
lines changes no identity.  The journal never holds the token and never the content
(only that hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

import opentrain_async._telemetry as _telemetry
from opentrain_async._time import SYSTEM_CLOCK, Clock
from opentrain_async._version import __version__

from ._journal_file import FileJournalStore
from ._journal_store import (
    CorruptRecordError,
    JournalError,
    JournalStore,
    StoredRecords,
    not_ours,
)

__all__ = [
    "FORMAT",
    "CorruptRecordError",
    "FileJournalStore",
    "InputIdentity",
    "Journal",
    "JournalError",
    "JournalState",
    "JournalStore",
    "Progress",
    "StoredRecords",
    "content_hash",
    "identity",
    "load_journal",
    "open_journal",
]

MARK = "opentrain-async"
"""The header's ``journal`` field: this file is a journal of ours."""
FORMAT = 2
"""Journal format written by this version (1: line-number identities, no header)."""


def content_hash(conversation_id: str, content: str) -> str:
    """SHA-256 (hex) of ``conversation_id`` NUL ``content``, as recorded in the journal."""
    data = f"{conversation_id}\x00{content}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


def identity(key: str | None, digest: str, occurrence: int) -> str:
    """An input's identity: ``key:<key>``, else ``c:<sha256>:<occurrence>`` (from 1)."""
    if key:
        return f"key:{key}"
    return f"c:{digest}:{occurrence}"


@attrs.frozen
class InputIdentity:
    """Which job a journal belongs to: the input file and the API it was sent to."""

    path: str
    """The input's absolute path, or ``<stdin>``."""
    api_root: str | None = None
    content: str | None = None
    """The job's content fingerprint (``job_fingerprint``): the same inputs, any path."""
    inputs: Callable[[], Iterable[tuple[str, str]]] = attrs.field(
        default=lambda: (), eq=False, repr=False
    )
    """Every input's identity and content hash, read on demand (a pass over the job,
    no copy of it): a part of a job is that job."""

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"path": self.path, "apiRoot": self.api_root}
        if self.content is not None:
            record["content"] = self.content
        return record


# -- what the records say ----------------------------------------------------------------


@attrs.define
class Progress:
    """What the journal says about one input."""

    first_started: float | None = None
    """Wall-clock time of its first ``started`` record (read-back looks from there)."""
    last_started: float | None = None
    open: bool = False
    """Started and not ended since: the outcome is unknown."""
    ok: bool = False
    message_id: str | None = None
    kind: str | None = None
    """The failure kind of its last ``ended`` record, when it failed."""
    error: str | None = None
    final: bool = True
    """False for failures that stopped the run (401, unreachable): retried automatically."""
    sha256: str | None = None
    conversation_id: str | None = None
    """The conversation its last ``started`` record names (a reused key says where it went)."""
    line: int | None = None
    resolved: str | None = None
    """A failure marked fixed elsewhere (``journal resolve``): its note; a run counts the
    input as done. A later send of it (``--retry-failed``) clears it."""

    @property
    def maybe_sent(self) -> bool:  # no outcome since it started, or an unknown one
        return self.open or self.kind == "delivery_unknown"


@attrs.define
class JournalState:
    """Everything the journal's records say, by identity."""

    inputs: dict[str, Progress] = attrs.Factory(dict)
    delivered_ids: set[str] = attrs.Factory(set)
    """Message ids already attributed to an input (never attribute one twice)."""
    torn_tail: bool = False
    runs: int = 0
    header: dict[str, Any] | None = None
    note: str | None = None
    """What opening it found worth saying (the input moved, or is part of the job)."""


def _check_header(name: str, stored: StoredRecords) -> dict[str, Any] | None:
    """The header, None for an empty journal; ``JournalError`` if this is not ours."""
    if not stored.records:
        if stored.torn:
            raise not_ours(name, "it holds one partial line and no journal header")
        return None
    header = stored.records[0]
    if header.get("journal") != MARK:
        if "event" in header:
            raise JournalError(
                f"journal {name} was written by an earlier opentrain-async (format 1, "
                "identities by line number): finish that job with the version that wrote "
                "it, or start a new journal"
            )
        raise not_ours(name, "its first line is not a journal header")
    version = header.get("format")
    if not isinstance(version, int) or version > FORMAT:
        raise JournalError(
            f"journal {name} has format {version!r}; this version reads format {FORMAT} "
            "(upgrade opentrain-async)"
        )
    return header


def _replay(name: str, stored: StoredRecords) -> JournalState:
    header = _check_header(name, stored)
    state = JournalState(torn_tail=stored.torn, header=header)
    for index, record in enumerate(stored.records[1:], 2):
        try:
            _apply(state, record)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # Recursion: deep
            raise JournalError(
                f"journal {name} is corrupt at record {index} ({type(exc).__name__}: {exc}); "
                "two runs wrote it at once, or it was edited"
            ) from None
    return state


def _apply(state: JournalState, record: Mapping[str, Any]) -> None:
    event = record["event"]
    if event == "run":
        state.runs += 1
        return
    if event == "resolved":
        resolved = state.inputs.get(str(record["id"]))
        if resolved is not None and not resolved.ok and not resolved.open:
            resolved.resolved = str(record.get("note") or "resolved")
        return
    if event not in ("started", "ended"):
        return  # written by a newer version: ignore what we do not know
    ident = str(record["id"])
    progress = state.inputs.setdefault(ident, Progress())
    progress.resolved = None  # sent again: what the send says counts
    at = float(record["at"])
    if event == "started":
        if progress.first_started is None:
            progress.first_started = at
        progress.last_started = at
        progress.open = True
        progress.sha256 = record.get("sha256", progress.sha256)
        conv = record.get("conversationId")
        progress.conversation_id = conv if isinstance(conv, str) else progress.conversation_id
        line = record.get("line")
        progress.line = line if isinstance(line, int) else progress.line
        return
    progress.open = False
    if record["ok"]:
        progress.ok, progress.kind, progress.error = True, None, None
        progress.message_id = str(record["messageId"])
        state.delivered_ids.add(progress.message_id)
    else:
        progress.ok, progress.kind = False, str(record.get("kind") or "error")
        progress.error = str(record.get("error") or "")
        progress.final = bool(record.get("final", True))


async def _read(store: JournalStore) -> JournalState:
    try:
        stored = await store.read()
    except CorruptRecordError as exc:
        if exc.index == 0:
            raise not_ours(store.name, "its first line is not a journal header") from None
        raise JournalError(
            f"journal {store.name} is corrupt: {exc}; two runs wrote it at once, or it was "
            "edited. Nothing was sent"
        ) from None
    return _replay(store.name, stored)


async def load_journal(store: JournalStore) -> JournalState:
    """Read a journal without taking it over (``--dry-run``); missing: an empty state."""
    await store.open()
    try:
        return await _read(store)
    finally:
        await store.close()


def check_input(
    state: JournalState, name: str, expected: InputIdentity, *, reuse: bool
) -> str | None:
    """Refuse a journal written for another job or another API, unless ``reuse``.

    The job is known by its content, not its path: the same content from another path
    (a moved file, another mount, a pod's new volume) resumes, and so does a part of
    the job (its failures file fed back, a subset), whose every input the journal has
    recorded.  Returns what to tell the user about it (None: nothing moved)."""
    header = state.header
    if header is None or reuse:
        return None
    recorded = header.get("input") or {}
    path, api = recorded.get("path"), recorded.get("apiRoot")
    note = None
    if path not in (None, expected.path):
        if expected.content is not None and recorded.get("content") == expected.content:
            note = (
                f"journal {name}: the input moved from {path} to {expected.path} (same "
                "content): resuming that job"
            )
        elif (count := _part_of(state, expected.inputs())) is not None:
            note = (
                f"journal {name}: these {count:,} inputs are part of the job "
                f"of {path} (its failures file, or a subset): resuming that job"
            )
        else:
            raise JournalError(
                f"journal {name} was written for the input {path}, not {expected.path}, "
                "and holds other content; pass --reuse-journal if it is the same job, or "
                "use another --journal"
            )
    if None not in (api, expected.api_root) and api != expected.api_root:
        raise JournalError(
            f"journal {name} was written for a job sent to {api}, not {expected.api_root}; "
            "pass --reuse-journal to use it anyway, or use another --journal"
        )
    return note


def _part_of(state: JournalState, inputs: Iterable[tuple[str, str]]) -> int | None:
    """How many inputs, when every one is recorded in the journal with the same
    content; None otherwise (or when there are none)."""
    count = 0
    for ident, digest in inputs:
        progress = state.inputs.get(ident)
        if progress is None or progress.sha256 != digest:
            return None
        count += 1
    return count or None


async def open_journal(
    store: JournalStore,
    expected: InputIdentity,
    *,
    reuse: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[Journal, JournalState]:
    """Take the journal over for this run: check it is ours and for this job, read it,
    and create it (header first) when it is new."""
    await store.open()
    try:
        state = await _read(store)
        state.note = check_input(state, store.name, expected, reuse=reuse)
        if state.header is None:
            header = {
                "journal": MARK,
                "format": FORMAT,
                "input": expected.as_record(),
                "version": __version__,
                "at": clock.wall(),
            }
            await store.create(header)
            state.header = header
    except BaseException:
        await store.close()
        raise
    return Journal(store, clock=clock), state


class Journal:
    """An open journal for one run: typed records and group-committed durability.

    Records are queued and written by one store write at a time; while a write is under
    way, every record queued meanwhile goes into the next one, so a busy run pays for
    far fewer fsyncs than records.  ``append(durable=True)`` returns once its record is
    durable (``started`` must be, before the send); ``durable=False`` returns at once
    (``ended``: if it is lost in a crash, the input is read back on the next run, which
    is correct, only slower).  A failed write is raised by the next ``append``, or by
    ``aclose`` when no call has raised it yet (once: closing in a ``finally`` does not
    mask the error being handled).
    """

    def __init__(self, store: JournalStore, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self._wall = clock.wall
        """The wall clock records are stamped with (the job's time seam)."""
        self.pending: list[Mapping[str, Any]] = []  # not written yet (failed: never)
        self._queued = 0
        self._durable = 0
        self._flush: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        self._failure_raised = False  # a failure is raised once; aclose does not repeat it
        self.records = 0

    @property
    def name(self) -> str:
        return self.store.name

    async def append(self, record: Mapping[str, Any], *, durable: bool = True) -> None:
        """Queue one record; with ``durable``, return once it is on stable storage."""
        self._check()
        self.pending.append(record)
        self._queued += 1
        self.records += 1
        sequence = self._queued
        if self._flush is None or self._flush.done():
            self._start_flush()
        if not durable:
            return
        while self._durable < sequence:
            if self._flush is None or self._flush.done():
                self._check()
                self._start_flush()
            assert self._flush is not None
            try:
                await asyncio.shield(self._flush)
            except Exception:
                self._check()
                raise

    def _start_flush(self) -> None:
        flush = asyncio.ensure_future(self._write_pending())
        # A failure is kept in ``_failed`` and raised by the next append or aclose.
        flush.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._flush = flush

    def _check(self) -> None:
        if self._failed is not None:
            self._failure_raised = True
        if isinstance(self._failed, JournalError):
            raise self._failed  # the store's own verdict (e.g. a lost lease) says it best
        if self._failed is not None:
            raise JournalError(
                f"writing journal {self.name} failed: {self._failed}"
            ) from self._failed

    async def _write_pending(self) -> None:
        while self.pending and self._failed is None:  # what queued meanwhile goes next
            batch, self.pending = self.pending, []
            target = self._queued - len(self.pending)
            try:
                await self.store.append(batch)
            except BaseException as exc:
                self._failed, self.pending = exc, batch + self.pending
                raise
            _telemetry.journal_commit(len(batch))
            self._durable = target

    async def aclose(self) -> None:
        """Write everything queued and release the journal; raises if a write failed."""
        try:
            while self._flush is not None and not self._flush.done():
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._flush)
            if self.pending and self._failed is None:
                with contextlib.suppress(Exception):
                    await self._write_pending()
        finally:
            await self.store.close()
        if not self._failure_raised:
            self._check()

    # -- the records ------------------------------------------------------------------

    async def run_started(self, source: str) -> None:
        """One record per run (for people reading the journal)."""
        await self.append(
            {
                "event": "run",
                "at": self._wall(),
                "pid": os.getpid(),
                "input": source,
                "version": __version__,
            }
        )

    async def started(
        self, ident: str, line: int, conversation_id: str, digest: str, at: float
    ) -> None:
        """An input's send is about to start."""
        await self.append(
            {
                "event": "started",
                "id": ident,
                "line": line,
                "conversationId": conversation_id,
                "sha256": digest,
                "at": at,
            }
        )

    async def ended_ok(self, ident: str, message_id: str, *, reconciled: bool) -> None:
        """An input was delivered as ``message_id``."""
        record: dict[str, Any] = {
            "event": "ended",
            "id": ident,
            "ok": True,
            "messageId": message_id,
            "at": self._wall(),
        }
        if reconciled:
            record["reconciled"] = True
        await self.append(record, durable=False)

    async def ended_failed(
        self,
        ident: str,
        *,
        kind: str,
        error: str,
        code: str | None = None,
        status: int | None = None,
        final: bool = True,
    ) -> None:
        """An input was not delivered (``final=False``: retry it on the next run)."""
        record: dict[str, Any] = {
            "event": "ended",
            "id": ident,
            "ok": False,
            "kind": kind,
            "error": error[:300],
            "final": final,
            "at": self._wall(),
        }
        if code is not None:
            record["code"] = code
        if status is not None:
            record["status"] = status
        await self.append(record, durable=False)
