"""Exactly once for SDK users: ``send_all(..., journal=...)`` and ``send_many(..., journal=...)``.

A thin public adapter over the command line's journal (the same stores, the same
records, so ``opentrain-async journal show`` reads an SDK job's journal too)::

    report = await client.send_all(items, journal="jobs/batch7.journal")
    report = await client.send_all(items, journal="redis://redis:6379/0?job=batch7")

Before each send a ``started`` record is made durable; each outcome is recorded after.
A task retried after a crash (an arq or celery retry, a pod rescheduled) runs the same
call again: what the journal has as delivered is reported without a send, a send the
crash left open is read back first (found: delivered; not found: sent), the rest is
sent.  A second run of the same job while one holds the journal raises ``JobBusyError``
(a file journal is locked with ``flock``; a Redis journal holds a lease, see
``RedisJournalStore``).

An input's identity is its ``key`` (an ``OutgoingMessage``'s or a mapping's ``"key"``)
when it has one, else its conversation and content and which occurrence of that pair it
is: give keys when one job may send the same text to a conversation twice.

The stores live beside the command line today (``opentrain_async._cli``); this module
is their public face, loaded only when ``journal=`` is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections import Counter
from collections.abc import Container
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from ._bulk import SendOutcome, normalize_item

# The journal's logic and stores (no command-line code runs from these two modules).
from ._cli._journal import (
    FileJournalStore,
    InputIdentity,
    Journal,
    JournalError,
    JournalState,
    JournalStore,
    content_hash,
    identity,
    open_journal,
)
from ._cli._journal_redis import (
    JournalBusyError,
    RedisJournalStore,
    RedisJournalURL,
    is_redis_url,
)
from ._errors import (
    DeliveryUnknownError,
    InvalidRequestError,
    JobBusyError,
    JobJournalError,
    NotAttemptedError,
    OpenTrainError,
)
from ._models import Message, OutgoingMessage
from ._time import Clock

__all__ = [
    "FileJournalStore",
    "JournalStore",
    "JournaledRun",
    "RedisJournalStore",
    "RedisJournalURL",
    "journaled_run",
    "open_store",
]

SDK_INPUT = "<send_all>"
"""What the journal's header names as the job's input (the CLI names a file)."""


class _Client(Protocol):
    """What a journaled run needs of the client (the client is never imported here)."""

    @property
    def api_root(self) -> str: ...

    @property
    def reconcile_delay(self) -> float: ...

    def claim_ids(self, message_ids: Container[str]) -> None: ...

    async def find_own_message(
        self, conversation_id: str, content: str, *, since: float
    ) -> Message | None: ...


def open_store(spec: Any) -> JournalStore:
    """A journal store from ``journal=``: a ``redis://``/``rediss://`` URL with
    ``?job=NAME``, a path (``str`` or ``os.PathLike``), or a store already built."""
    if isinstance(spec, str) and is_redis_url(spec):
        try:
            return RedisJournalStore(RedisJournalURL.parse(spec))
        except JournalError as exc:  # the message shows the URL without its password
            raise JobJournalError(str(exc)) from None
    if isinstance(spec, (str, os.PathLike)):
        if not str(spec):
            raise JobJournalError("journal= is an empty path")
        return _LockedFileStore(Path(spec))
    needed = ("open", "read", "create", "append", "close", "name")
    if all(hasattr(spec, name) for name in needed):
        store: JournalStore = spec
        return store
    raise JobJournalError(
        "journal= takes a path, a redis://host:port/db?job=NAME URL or a journal store "
        f"(FileJournalStore, RedisJournalStore), got {type(spec).__name__}"
    )


_HELD_HERE: set[tuple[int, int]] = set()
"""File journals (device, inode) this process holds: a lock held by a loop of our own
that was never closed is not "another run"."""


class _LockedFileStore(FileJournalStore):
    """A file journal whose "in use" refusal is a ``JobBusyError``."""

    _held: tuple[int, int] | None = None

    async def open(self) -> None:
        try:
            await super().open()
        except JournalError as exc:
            if "in use" not in str(exc):
                raise
            try:
                found = os.stat(self.path)
                here = (found.st_dev, found.st_ino) in _HELD_HERE
            except OSError:
                here = False
            if here:
                raise JobBusyError(
                    f"journal {self.name} is held by this process: a send_many(journal=...) "
                    "of this job was left without being closed (loop over it under "
                    "`async with`, or call aclose()), or is still running"
                ) from None
            raise JobBusyError(f"{exc}: another run of this job is under way") from None
        with contextlib.suppress(OSError):
            found = os.stat(self.path)
            self._held = (found.st_dev, found.st_ino)
            _HELD_HERE.add(self._held)

    async def close(self) -> None:
        if self._held is not None:
            _HELD_HERE.discard(self._held)
            self._held = None
        await super().close()


def journaled_run(client: _Client, spec: Any, *, clock: Clock | None = None) -> JournaledRun:
    """The hooks ``send_all``/``send_many`` run with for ``journal=spec``."""
    return JournaledRun(client, open_store(spec), clock=clock or Clock())


class JournaledRun:
    """One bulk run recorded in a journal: the engine's ``SendHooks``.

    ``open`` takes the journal over (``JobBusyError`` when another run holds it),
    ``before_send`` decides each input from what the journal says (already delivered:
    settled without a send; left open by a crash: read back; else a durable
    ``started`` record, then the send), ``after`` records the outcome, ``close``
    releases the journal.
    """

    def __init__(self, client: _Client, store: JournalStore, *, clock: Clock) -> None:
        self._client = client
        self.store = store
        self._clock = clock
        self._journal: Journal | None = None
        self._state = JournalState()
        self._occurrences: Counter[str] = Counter()
        self._idents: dict[int, str] = {}
        """Inputs journaled as started and not recorded as ended yet, by index."""
        self._keys: dict[str, int] = {}
        """Keys given to this run's inputs: the input that used each first."""
        self._delivered_keys: set[str] = set()
        """Keys whose owner is the input an earlier run delivered under them."""
        self.settled_from_journal = 0
        """Inputs this run reported as delivered from the journal, without a send."""
        self.read_back = 0
        """Inputs a crash left open that this run settled by read-back."""
        self._lost_key = (
            os.path.realpath(store.path) if isinstance(store, FileJournalStore) else store.name
        )
        """The journal's key in ``_LOST``: a file's real path, so a retry naming it
        relative, absolute or through a symlink finds what this run lost."""
        self._lost: dict[str, str] = {}
        """This journal's deliveries an earlier run on this client lost the records of
        (taken from ``_LOST`` at open: inputs the journal has open, no others)."""

    def __repr__(self) -> str:
        return f"JournaledRun({self.store.name!r})"

    async def open(self) -> None:
        if self._journal is not None:
            return
        try:
            journal, state = await open_journal(
                self.store, InputIdentity(SDK_INPUT, self._client.api_root), clock=self._clock
            )
            try:
                await journal.run_started(SDK_INPUT)
            except BaseException:
                await _release(journal)
                raise
        except JournalBusyError as exc:  # a Redis lease held by a live run
            raise JobBusyError(str(exc)) from None
        except OpenTrainError:
            raise
        except JournalError as exc:
            raise JobJournalError(_in_sdk_words(str(exc))) from None
        self._journal, self._state = journal, state
        self._client.claim_ids(state.delivered_ids)
        # Taken, not read: what this journal does not have open (it was removed, or the
        # name is another job's now) is no delivery of this run's inputs.
        lost = _LOST.get(self._client, {}).pop(self._lost_key, {})
        for ident, message_id in lost.items():
            progress = state.inputs.get(ident)
            if progress is not None and progress.maybe_sent:
                self._lost[ident] = message_id

    async def close(self) -> None:
        journal, self._journal = self._journal, None
        if journal is None:
            return
        try:
            await journal.aclose()
        except JournalError as exc:
            raise JobJournalError(str(exc)) from None
        finally:  # deliveries whose record a failed write lost: this client's retry
            lost = dict(self._lost)  # not settled by this run: still the next one's
            lost.update({r["id"]: r["messageId"] for r in journal.pending if r.get("ok") is True})
            if lost:
                kept = _LOST.setdefault(self._client, {})
                kept.pop(self._lost_key, None)
                kept[self._lost_key] = lost  # the newest last
                while len(kept) > _LOST_JOURNALS:
                    del kept[next(iter(kept))]

    def _identity(
        self, index: int, message: OutgoingMessage, *, claim: bool = True
    ) -> tuple[str, str]:
        """The input's content hash and journal identity, counting occurrences of an
        unkeyed pair (in input order within a conversation).  A key names one input of
        the job: the one an earlier run delivered under it, else the first of this run
        to claim it; another input with that key is refused (as the CLI refuses it)."""
        digest = content_hash(message.conversation_id, message.content)
        key = message.key
        if not key:  # as identity(): an empty key is no key
            self._occurrences[digest] += 1
            return digest, identity(None, digest, self._occurrences[digest])
        ident = identity(key, digest, 0)
        if claim:
            earlier = self._state.inputs.get(ident)
            if (
                earlier is not None
                and earlier.ok
                and earlier.sha256 == digest
                and key not in self._delivered_keys
            ):
                # The input an earlier run delivered: its owner.  The first one only: an
                # input equal to it later in the job is the duplicate it was in that run.
                self._delivered_keys.add(key)
                self._keys[key] = index
            elif self._keys.setdefault(key, index) != index:
                raise InvalidRequestError(
                    f"duplicate key {key!r} (also used by input #{self._keys[key]}); a "
                    "key names one input of the whole job",
                    field="key",
                    limit="unique within the job",
                    actual=key,
                )
        return digest, ident

    def settled(self, index: int, item: Any) -> Message | None:
        """An input about to be reported blocked (its conversation stopped): the message
        an earlier run delivered for it, else None."""
        try:
            message = normalize_item(item)
            digest, ident = self._identity(index, message, claim=False)
        except InvalidRequestError:
            return None
        progress = self._state.inputs.get(ident)
        if (
            progress is None
            or not progress.ok
            or progress.message_id is None
            or progress.sha256 not in (None, digest)
        ):
            return None
        self.settled_from_journal += 1
        return _delivered(progress.message_id, message, progress.last_started)

    async def before_send(self, index: int, item: Any) -> tuple[Message, bool] | None:
        journal = self._journal
        if journal is None:
            raise JobJournalError("the journal is not open (the run has ended)")
        message = normalize_item(item)
        conversation_id, content = message.conversation_id, message.content
        digest, ident = self._identity(index, message)
        progress = self._state.inputs.get(ident)
        if progress is not None and progress.sha256 not in (None, digest):
            if progress.ok or progress.maybe_sent:
                raise InvalidRequestError(
                    f"key {message.key!r} was sent by an earlier run with other content; "
                    "not sent (give the new message a new key)",
                    field="key",
                    limit="the content it was first sent with",
                    actual=None,
                )
            progress = None  # it failed with the old content: the new one is a new attempt
        if progress is not None and progress.ok and progress.message_id is not None:
            self.settled_from_journal += 1
            return _delivered(progress.message_id, message, progress.last_started), False
        if progress is not None and progress.maybe_sent:
            lost = self._lost.pop(ident, None)
            if lost is not None:  # we delivered it; read-back would skip our own claim
                await journal.ended_ok(ident, lost, reconciled=True)
                return _delivered(lost, message, progress.last_started), True
            found = await self._read_back(conversation_id, content, progress.first_started)
            if found is not None:
                self.read_back += 1
                self._state.delivered_ids.add(found.id)
                await journal.ended_ok(ident, found.id, reconciled=True)
                return found, True
        if isinstance(self.store, RedisJournalStore):
            try:
                self.store.check_send()  # fencing: no send once the lease is lost
            except JournalError as exc:
                raise JobJournalError(str(exc)) from None
        try:
            await journal.started(ident, index + 1, conversation_id, digest, self._clock.wall())
        except JournalError as exc:
            raise JobJournalError(str(exc)) from None
        self._idents[index] = ident
        return None

    async def _read_back(
        self, conversation_id: str, content: str, since: float | None
    ) -> Message | None:
        """A send a crash left open: let a request still on the wire land, then look."""
        clock = self._clock
        started = since or 0.0
        wait = min(started + self._client.reconcile_delay - clock.wall(), 30.0)
        if wait > 0:
            await clock.sleep(wait)
        try:
            return await self._client.find_own_message(
                conversation_id, content, since=min(started, clock.wall())
            )
        except DeliveryUnknownError:
            raise
        except OpenTrainError as exc:
            raise DeliveryUnknownError(
                f"an earlier run left a send to {conversation_id} open and it could not "
                f"be read back ({str(exc).splitlines()[0] if str(exc) else exc!r})",
                cause=exc,
                conversation_id=conversation_id,
            ) from None

    async def after(self, outcome: SendOutcome) -> None:
        ident = self._idents.pop(outcome.index, None)
        journal = self._journal
        if ident is None or journal is None:
            return  # never journaled as started: nothing to record
        with contextlib.suppress(JournalError):  # raised again by close(): the run fails
            if outcome.message is not None:
                await journal.ended_ok(ident, outcome.message.id, reconciled=outcome.reconciled)
                return
            error = outcome.error
            assert error is not None
            await journal.ended_failed(
                ident,
                kind=outcome.reason or outcome.kind,
                error=str(error).splitlines()[0] if str(error) else type(error).__name__,
                code=error.code,
                status=error.status,
                final=not isinstance(error, NotAttemptedError),
            )


_LOST: weakref.WeakKeyDictionary[Any, dict[str, dict[str, str]]] = weakref.WeakKeyDictionary()
"""Per client, per journal: input identity -> the message id it was delivered as, whose
``ended`` record a failed journal write lost.  The journal has the input open, so a retry
would read it back, and read-back skips ids this client claimed (its own delivery): a
retry on the same client (an arq worker's) settles it from here instead."""

_LOST_JOURNALS = 64
"""Journals per client whose lost deliveries are kept for a retry.  A retry comes soon
(a task queue retries a failed job after a short delay, a few other jobs between), so
64 covers it, while a worker that never retries its failed jobs keeps no more than
this many (each at most the records one failed write held).  A retry past that is
left to read-back, which skips this client's own message: it may send the input again."""

_RELEASING: set[asyncio.Future[None]] = set()
"""Releases under way whose caller was cancelled again (kept until they end)."""


async def _release(journal: Journal) -> None:
    """Release a journal whose run never started (its first record failed, or the task
    was cancelled, by ``asyncio.timeout`` say): held on, its lock (a file's ``flock``, a
    Redis lease renewed in the background) refused every retry of the job in this
    process, and a Redis one in every process, until this one exited.  The record being
    written is waited for first (its file descriptor is not closed under it)."""
    closing = asyncio.ensure_future(journal.aclose())
    _RELEASING.add(closing)
    closing.add_done_callback(_released)
    with contextlib.suppress(Exception):  # the run's own error is the one raised
        await asyncio.shield(closing)


def _released(closing: asyncio.Future[None]) -> None:
    _RELEASING.discard(closing)
    if not closing.cancelled():
        closing.exception()  # retrieved: a failed close is not "never retrieved"


def _delivered(message_id: str, message: OutgoingMessage, started: float | None) -> Message:
    """The message an earlier run delivered for ``message``, as the journal has it."""
    return Message(
        id=message_id,
        conversation_id=message.conversation_id,
        created_at=datetime.fromtimestamp(started or 0.0, timezone.utc),
        is_from_viewer=True,
        content=message.content,
    )


_CLI_ADVICE = (
    (
        "pass --reuse-journal to use it anyway, or use another --journal",
        "a journal names one job: give this job another journal=",
    ),
    (
        "pass --reuse-journal if it is the same job, or use another --journal",
        "a journal names one job: give this job another journal=",
    ),
    ("or pass another --journal", "or give another journal="),
)


def _in_sdk_words(message: str) -> str:
    """A journal error with the command line's advice (``--reuse-journal``) put as
    what a ``send_all`` caller can do."""
    for cli, sdk in _CLI_ADVICE:
        message = message.replace(cli, sdk)
    return message
