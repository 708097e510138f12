"""Where a journal's records live: the ``JournalStore`` protocol, what a store reads
back (``StoredRecords``) and the errors a store raises.  The journal logic is
``_journal``'s; the stores are ``_journal_file`` (the default) and ``_journal_redis``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

__all__ = [
    "CorruptRecordError",
    "JournalError",
    "JournalStore",
    "StoredRecords",
    "not_ours",
]


class JournalError(Exception):
    """The journal cannot be used: not ours, corrupt, for another job, or in use."""


@attrs.frozen
class StoredRecords:
    """Everything a store holds: the records in order (the header first) and whether a
    partial record at the end (a write cut short by a crash) was left out."""

    records: list[dict[str, Any]]
    torn: bool = False


class CorruptRecordError(JournalError):
    """A record that is not a JSON object; ``index`` counts from 0 (the header)."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"record {index + 1} is not valid ({reason})")
        self.index = index
        self.reason = reason


class JournalStore(Protocol):
    """Where a journal's records live.  One open store has one owner (one run).

    The journal logic calls, in order: ``open``; ``read``; ``create`` (only when ``read``
    found nothing) or nothing; any number of ``append``; ``close``.  ``append`` is only
    called once the journal logic has accepted the header, so a store never writes to
    something that is not a journal of ours.
    """

    name: str
    """How to name this journal in messages (a path, a Redis key)."""

    async def open(self) -> None:
        """Take exclusive ownership; ``JournalError`` if another run holds it or the
        location cannot hold a journal (not a regular file, unreadable)."""

    async def read(self) -> StoredRecords:
        """Every record, in order (empty when new).  ``CorruptRecordError`` for a record
        that cannot be decoded, except a partial last one (``torn``)."""

    async def create(self, header: Mapping[str, Any]) -> None:
        """Write ``header`` as the first record of an empty journal, durably and
        atomically: after a crash the journal is absent or has the whole header."""

    async def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append ``records`` in order and return once they survive a crash.  A partial
        record a crash left at the end is discarded first."""

    async def close(self) -> None:
        """Release ownership (after any write under way has finished)."""


def not_ours(name: str, why: str) -> JournalError:
    return JournalError(
        f"{name} is not a journal written by opentrain-async ({why}); refusing to use it "
        "(nothing was changed). Pass a new path with --journal"
    )
