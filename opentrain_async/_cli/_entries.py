"""A bulk job's inputs and their identities: every line of the input, valid (a
``JobInput`` with its identity and content hash) or bad (why), and the job's content
fingerprint.  See ``_plan`` for what is done with them, ``_journal`` for identities.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import Counter
from collections.abc import Iterator

import attrs

from opentrain_async import OutgoingMessage

from ._input import JobSource, Line
from ._journal import Progress, content_hash, identity

__all__ = [
    "OUTCOME",
    "JobInput",
    "carried_identity",
    "entries",
    "job_fingerprint",
    "sent_or_maybe",
]


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


def fed_back_unknown(line: Line) -> bool:
    """A ``--failures`` row whose outcome was unknown (``delivery_unknown``): it may
    have been delivered, so only the journal that knows it may send it (read back)."""
    record = line.record or {}
    outcome = record.get(OUTCOME)
    reason = outcome.get("reason") if isinstance(outcome, dict) else record.get(f"{OUTCOME}.reason")
    return reason == "delivery_unknown"


def _occurrence(carried: str | None, digest: str) -> int | None:
    """The occurrence number of a carried ``c:<digest>:<n>`` identity of this content."""
    if carried is None:
        return None
    kind, _, rest = carried.partition(":")
    found, _, number = rest.rpartition(":")
    if kind != "c" or found != digest or not (number.isascii() and number.isdigit()):
        return None  # "²" is a digit to isdigit(), not to int()
    if int(number) < 1:
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


def sent_or_maybe(progress: Progress) -> bool:
    """The journal has this input as delivered, or as maybe delivered."""
    return progress.ok or progress.maybe_sent
