"""Reading a bulk job: JSON Lines or CSV, validated with the SDK's own rules.

Every input yields one ``Line``: either a valid ``OutgoingMessage`` (validated by
``normalize_item``, so the limits are exactly the client's) or the reason it is bad.
Line numbers are 1-based physical lines of the file (for CSV, the line a record
starts on; the header is line 1).  A UTF-8 byte order mark (Excel's "CSV UTF-8") is
skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import mmap
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from opentrain_async._bulk import normalize_item
from opentrain_async._errors import InvalidRequestError
from opentrain_async._models import OutgoingMessage

__all__ = ["InputError", "JobSource", "Line", "detect_format"]

Format = Literal["jsonl", "csv"]

_EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
_FIELDS = ("conversationId", "content")


class InputError(Exception):
    """The job cannot be read at all (missing file, undecodable, CSV without headers)."""


@attrs.frozen
class Line:
    """One input of the job: ``message`` when valid, else ``problem``."""

    number: int
    message: OutgoingMessage | None = None
    problem: str | None = None
    record: dict[str, Any] | None = attrs.field(default=None, eq=False, repr=False)
    """The fields as read (for ``--failures``), when the line parsed as a record."""
    raw: str | None = attrs.field(default=None, eq=False, repr=False)
    """The line's text, when it did not parse at all."""


def detect_format(name: str, head: str) -> Format:
    """By extension, else by content: a first non-blank line starting with ``{`` is JSONL."""
    suffix = Path(name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    for line in head.splitlines():
        if line.strip():
            return "jsonl" if line.lstrip().startswith("{") else "csv"
    return "jsonl"


class JobSource:
    """A job file, pipe or stdin, read once (into memory, or a private temporary copy
    when larger than ``SPILL_BYTES``).

    Every pass over the job (validation and the plan, the sends, ``--failures``) reads
    these same bytes: a file edited, truncated or replaced while the job runs changes
    nothing about this run (the next run plans from the new file), and a pipe is read
    only once.
    """

    def __init__(self, name: str, *, fmt: Format | None = None, stdin_text: str | None = None):
        self.name = name
        data = _read_if_not_a_file(name) if stdin_text is None else None
        # stdin or a pipe: its name means nothing to the next run
        self.is_stdin = stdin_text is not None or data is not None
        if stdin_text is not None:
            data = stdin_text.removeprefix("\ufeff").encode("utf-8", "surrogatepass")
        elif data is None:
            data = _read_file(name)
        self._data = data
        try:  # the head decides the format; a multibyte character cut at its end is fine
            head = codecs.getincrementaldecoder("utf-8-sig")().decode(data[:16384])
        except UnicodeDecodeError:
            raise InputError(f"{name}: not UTF-8 text") from None
        self.format: Format = fmt or detect_format("" if self.is_stdin else name, head)

    def lines(self) -> Iterator[Line]:
        """Every input, in file order, valid or not."""
        data = self._data
        raw: io.BytesIO | io.BufferedReader = (
            io.BytesIO(data)  # shares the bytes, no copy
            if isinstance(data, bytes)
            else io.BufferedReader(_MappedReader(data), _CHUNK)
        )
        with io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            try:
                if self.format == "csv":
                    yield from _csv_lines(handle, self.name)
                else:
                    yield from _jsonl_lines(handle)
            except UnicodeDecodeError:
                raise InputError(f"{self.name}: not UTF-8 text") from None


def _read_file(name: str) -> bytes | mmap.mmap:
    """The whole of a regular file, or ``InputError`` saying why not."""
    try:
        with open(name, "rb") as handle:
            return _copy_once(handle)
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a job file") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _hint(record: dict[str, Any], missing: list[str]) -> str:
    """Name the field the user probably meant (``conversation_id`` for ``conversationId``)."""
    for field in missing:
        for near in (re.sub(r"([A-Z])", r"_\1", field).lower(), field.lower()):
            if near != field and near in record:
                return f" (found {near!r}; the API's name is {field!r})"
    return ""


def _json_problem(exc: Exception) -> str:
    """Why a line is not JSON; only the column, since the file's line is already given."""
    if isinstance(exc, json.JSONDecodeError):
        why = exc.msg.removesuffix(" at")
        line = exc.doc.split("\n", 1)[0].rstrip("\r")
        if exc.lineno > 1 or exc.colno > len(line.rstrip()):  # one past the last character
            if why.startswith("Invalid control character"):  # the newline, inside a string
                why = "a string is not closed"
            return f"invalid JSON: {why} at the end of the line (it ends at column {len(line)})"
        return f"invalid JSON: {why} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "invalid JSON: nested too deeply"
    return f"invalid JSON ({exc})"


def _read_if_not_a_file(name: str) -> bytes | mmap.mmap | None:
    """The whole of a pipe (``<(cmd)``, ``/dev/stdin``); None for a regular file (or a
    name that does not open: reported by ``_read_file``).  Devices (``/dev/zero``) are
    refused: they never end."""
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return None  # reported when it is opened
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        raise InputError(f"{name}: not a regular file or a pipe (a device?)")
    try:
        with open(name, "rb") as handle:
            return _copy_once(handle)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


SPILL_BYTES = 64 << 20
"""A job larger than this is copied to a private temporary file, not kept in memory."""

_CHUNK = 1 << 20


def _copy_once(handle: io.BufferedReader) -> bytes | mmap.mmap:
    """The job's bytes, read once: in memory up to ``SPILL_BYTES``; beyond, a private
    temporary file mapped read-only, so a 4-million-line job costs page cache, not heap,
    and an edit of the original still changes nothing about this run."""
    chunks: list[bytes] = []
    size = 0
    while size <= SPILL_BYTES:
        chunk = handle.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    with tempfile.TemporaryFile(prefix="opentrain-job-") as copy:  # unlinked at once
        copy.writelines(chunks)
        chunks.clear()
        while chunk := handle.read(_CHUNK):
            copy.write(chunk)
        copy.flush()
        return mmap.mmap(copy.fileno(), 0, access=mmap.ACCESS_READ)  # outlives the fd


class _MappedReader(io.RawIOBase):
    """One pass over a mapped copy, with its own position (passes may interleave)."""

    def __init__(self, data: mmap.mmap) -> None:
        self._data = data
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = self._position
        chunk = self._data[start : start + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position = start + len(chunk)
        return len(chunk)


def _check(number: int, record: dict[str, Any]) -> Line:
    missing = [f for f in _FIELDS if record.get(f) is None]
    if missing:
        problem = "missing field " + ", ".join(repr(f) for f in missing) + _hint(record, missing)
        return Line(number, problem=problem, record=record)
    try:
        message = normalize_item(record)
    except InvalidRequestError as exc:
        return Line(number, problem=str(exc), record=record)
    if message.key is not None and not message.key.strip():
        message = attrs.evolve(message, key=None)
    return Line(number, message=message, record=record)


_QUOTED_FIELDS = ('"conversationId"', '"content"', '"key"')


def _loads_line(text: str) -> tuple[Any, list[str]]:
    """One JSON line, and which of our fields (``conversationId``, ``content``, ``key``)
    its top-level object names more than once (nested objects are the user's)."""
    if max(map(text.count, _QUOTED_FIELDS)) < 2:
        return json.loads(text), []  # the usual line: no hook (twice as fast)
    repeated: dict[int, list[str]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            names = [k for k in (*_FIELDS, "key") if sum(1 for n, _ in pairs if n == k) > 1]
            if names:
                repeated[id(obj)] = names
        return obj

    record = json.loads(text, object_pairs_hook=pairs_hook)
    return record, repeated.get(id(record), [])


def _jsonl_lines(handle: io.TextIOBase) -> Iterator[Line]:
    for number, text in enumerate(handle, 1):
        if not text.strip():
            continue
        try:
            record, repeated = _loads_line(text)
        except (ValueError, RecursionError) as exc:
            yield Line(number, problem=_json_problem(exc), raw=text.rstrip("\r\n"))
            continue
        if not isinstance(record, dict):
            problem = f"expected a JSON object, got {type(record).__name__}"
            yield Line(number, problem=problem, raw=text.rstrip("\r\n"))
            continue
        if repeated:  # json.loads keeps the last silently: maybe the wrong text
            problem = f"{repeated[0]!r} is given twice in this line; which one to send is unclear"
            yield Line(number, problem=problem, raw=text.rstrip("\r\n"))
            continue
        if "key" in record and record["key"] is not None and not isinstance(record["key"], str):
            record["key"] = str(record["key"])
        yield _check(number, record)


def _name_like(cell: str) -> str:
    """A header cell as a field name, case, spaces and ``_`` aside (``conversation_id``)."""
    return re.sub(r"[\s_]", "", cell).lower()


_NAMES_LIKE = {_name_like(f) for f in (*_FIELDS, "key")}


def _header_read(headers: Sequence[str]) -> str:
    """What a header missing our fields was read as, for its error, and why it missed
    them: separated by ``;`` (Excel in many locales) or tabs, or names with spaces
    around them.  A first line naming none of the fields is probably a message (the
    header forgotten): it is not shown."""
    named = {_name_like(part) for cell in headers for part in re.split(r"[;\t]", cell)}
    if not named & _NAMES_LIKE:
        return "; its first line (not shown) names none of them: is the header missing?"
    why = ""
    for separator, called in ((";", "';'"), ("\t", "tabs")):
        if any(separator in cell for cell in headers):
            why = f" (it looks separated by {called}, not commas: save it as comma-separated)"
            break
    else:
        if any(cell != cell.strip() and cell.strip() in _FIELDS for cell in headers):
            why = " (the names must not have spaces around them)"
    shown = ", ".join(repr(cell[:40]) for cell in headers[:10])
    return f"; the header read: {shown}{', ...' if len(headers) > 10 else ''}{why}"


def _csv_lines(handle: io.TextIOBase, name: str) -> Iterator[Line]:
    reader = csv.DictReader(handle)
    try:
        headers = reader.fieldnames
    except csv.Error as exc:
        raise InputError(f"{name}: bad CSV header ({exc})") from None
    if headers is None:
        return
    absent = [f for f in _FIELDS if f not in headers]
    if absent:
        raise InputError(
            f"{name}: CSV header must name conversationId and content (optionally key); "
            f"missing {', '.join(absent)}{_header_read(headers)}"
        )
    repeated = [f for f in (*_FIELDS, "key") if headers.count(f) > 1]
    if repeated:  # csv.DictReader would silently keep the last column of each
        raise InputError(f"{name}: CSV header names {', '.join(repeated)} more than once")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Line(start, problem=f"bad CSV ({exc})", raw="")
            start = reader.line_num + 1
            continue
        number, start = start, reader.line_num + 1
        record: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
        if None in row:
            record["extra"] = record.pop(None)  # type: ignore[call-overload]
            yield Line(number, problem="more fields than the header names", record=record)
            continue
        if not record.get("key"):
            record.pop("key", None)
        yield _check(number, record)
