"""Reading a bulk job: JSON Lines or CSV, validated with the SDK's own rules.

Every input yields one ``Line``: either a valid ``OutgoingMessage`` (validated by
``normalize_item``, so the limits are exactly the client's) or the reason it is bad.
Line numbers are 1-based physical lines of the file (for CSV, the line a record
starts on; the header is line 1).  A UTF-8 byte order mark (Excel's "CSV UTF-8") is
skipped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
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
    """A job file (or stdin, read once into memory) that can be iterated more than once."""

    def __init__(self, name: str, *, fmt: Format | None = None, stdin_text: str | None = None):
        self.name = name
        if stdin_text is None:
            stdin_text = _read_if_not_a_file(name)
        # stdin or a pipe: read once, and its name means nothing to the next run
        self.is_stdin = stdin_text is not None
        self._text = stdin_text
        if stdin_text is None:
            path = Path(name)
            try:
                with path.open("r", encoding="utf-8-sig", newline="") as handle:
                    head = handle.read(4096)
            except FileNotFoundError:
                raise InputError(f"{name}: no such file") from None
            except IsADirectoryError:
                raise InputError(f"{name}: is a directory, not a job file") from None
            except UnicodeDecodeError:
                raise InputError(f"{name}: not UTF-8 text") from None
            except OSError as exc:
                raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
        else:
            self._text = stdin_text.removeprefix("\ufeff")
            head = self._text[:4096]
        self.format: Format = fmt or detect_format(name if stdin_text is None else "", head)

    def _open(self) -> io.TextIOBase:
        if self._text is not None:
            return io.StringIO(self._text, newline="")
        try:
            return open(self.name, encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise InputError(f"{self.name}: cannot read: {exc.strerror or exc}") from None

    def lines(self) -> Iterator[Line]:
        """Every input, in file order, valid or not."""
        with self._open() as handle:
            try:
                if self.format == "csv":
                    yield from _csv_lines(handle, self.name)
                else:
                    yield from _jsonl_lines(handle)
            except UnicodeDecodeError:
                raise InputError(f"{self.name}: not UTF-8 text") from None


def _read_if_not_a_file(name: str) -> str | None:
    """The whole text of a pipe (``<(cmd)``, ``/dev/stdin``), which can be read only once;
    None for a regular file (read lazily, as often as needed).

    A job is read more than once (validation, then sending): a pipe reopened after the
    first pass would yield only what that pass left unread, silently losing inputs.
    Devices (``/dev/zero``) are refused: they never end.
    """
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
            return handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _check(number: int, record: dict[str, Any]) -> Line:
    missing = [f for f in _FIELDS if record.get(f) is None]
    if missing:
        problem = "missing field " + ", ".join(repr(f) for f in missing)
        return Line(number, problem=problem, record=record)
    try:
        message = normalize_item(record)
    except InvalidRequestError as exc:
        return Line(number, problem=str(exc), record=record)
    if message.key is not None and not message.key.strip():
        message = attrs.evolve(message, key=None)
    return Line(number, message=message, record=record)


def _jsonl_lines(handle: io.TextIOBase) -> Iterator[Line]:
    for number, text in enumerate(handle, 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as exc:
            yield Line(number, problem=f"invalid JSON ({exc})", raw=text.rstrip("\r\n"))
            continue
        if not isinstance(record, dict):
            problem = f"expected a JSON object, got {type(record).__name__}"
            yield Line(number, problem=problem, raw=text.rstrip("\r\n"))
            continue
        if "key" in record and record["key"] is not None and not isinstance(record["key"], str):
            record["key"] = str(record["key"])
        yield _check(number, record)


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
            f"missing {', '.join(absent)}"
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
