"""The bulk journal: identities, torn lines, corruption, locking and group commit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opentrain_async._cli._input import JobSource, detect_format
from opentrain_async._cli._journal import (
    JournalError,
    content_hash,
    identity,
    load_journal,
    open_journal,
)


def test_identity_is_the_key_when_there_is_one() -> None:
    """A keyed input is identified by its key alone, whatever its line or content."""
    assert identity(7, "invoice-7", content_hash("c", "x")) == "key:invoice-7"
    assert identity(9, "invoice-7", content_hash("d", "y")) == "key:invoice-7"


def test_identity_without_key_is_line_plus_hash() -> None:
    """Without a key: line number plus SHA-256 of conversationId NUL content."""
    digest = content_hash("conv_1", "hello")
    assert identity(3, None, digest) == f"line:3:{digest}"
    assert identity(4, None, digest) != identity(3, None, digest)
    assert content_hash("conv_1", "hello") != content_hash("conv_1h", "ello")
    assert content_hash("conv_1", "hello") != content_hash("conv_2", "hello")
    assert len(digest) == 64


def test_identity_hash_accepts_lone_surrogates() -> None:
    """JSON may carry lone surrogates; hashing them must not raise."""
    assert len(content_hash("c", "\ud83d")) == 64


def _write(path: Path, *records: object, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


def test_load_follows_started_and_ended(tmp_path: Path) -> None:
    """started then ended ok is delivered; started alone is open; a non-final failure retries."""
    path = tmp_path / "j.jsonl"
    _write(
        path,
        {"event": "run", "at": 1.0},
        {"event": "started", "id": "a", "at": 10.0},
        {"event": "ended", "id": "a", "ok": True, "messageId": "m1", "at": 11.0},
        {"event": "started", "id": "b", "at": 12.0},
        {"event": "started", "id": "c", "at": 13.0},
        {"event": "ended", "id": "c", "ok": False, "kind": "unauthorized", "final": False, "at": 1},
        {"event": "started", "id": "b", "at": 20.0},
    )
    state = load_journal(path)
    assert state.runs == 1
    assert state.inputs["a"].ok
    assert state.delivered_ids == {"m1"}
    b = state.inputs["b"]
    assert (b.open, b.first_started, b.last_started) == (True, 12.0, 20.0)
    c = state.inputs["c"]
    assert (c.ok, c.open, c.final, c.kind) == (False, False, False, "unauthorized")


def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    """A partial final line (killed mid-write) is ignored, then cut before appending."""
    path = tmp_path / "j.jsonl"
    _write(path, {"event": "started", "id": "a", "at": 1.0}, tail='{"event": "ended", "id"')

    async def scenario() -> None:
        journal, state = open_journal(path)
        assert state.torn_tail
        assert state.inputs["a"].open
        await journal.ended_ok("a", "m1", reconciled=True)
        await journal.aclose()

    asyncio.run(scenario())
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["messageId"] == "m1"
    assert load_journal(path).inputs["a"].ok


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    """Garbage before the last line is not a torn write: refuse to guess."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"event": "run", "at": 1}\nnot json\n{"event": "run", "at": 2}\n')
    with pytest.raises(JournalError, match="corrupt at line 2"):
        load_journal(path)


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    """A journal that does not exist yet is an empty state, not an error."""
    state = load_journal(tmp_path / "new.jsonl")
    assert state.inputs == {}
    assert not state.torn_tail


def test_second_writer_is_refused(tmp_path: Path) -> None:
    """Two runs cannot append to one journal at once."""
    path = tmp_path / "j.jsonl"
    first, _ = open_journal(path)
    try:
        with pytest.raises(JournalError, match="in use"):
            open_journal(path)
    finally:
        first.close_now()


async def test_concurrent_appends_are_whole_lines(tmp_path: Path) -> None:
    """Many concurrent appends (one group-committed fsync at a time) all land intact."""
    path = tmp_path / "j.jsonl"
    journal, _ = open_journal(path)
    await asyncio.gather(
        *(journal.started(f"key:{i}", i, "conv", "0" * 64, float(i)) for i in range(300))
    )
    await journal.aclose()
    state = load_journal(path)
    assert len(state.inputs) == 300
    assert all(p.open for p in state.inputs.values())
    assert journal.records == 300


def test_journal_file_is_private(tmp_path: Path) -> None:
    """The journal is created with mode 0600."""
    path = tmp_path / "j.jsonl"
    journal, _ = open_journal(path)
    journal.close_now()
    assert path.stat().st_mode & 0o777 == 0o600


def test_format_detection() -> None:
    """Extension decides; otherwise a first line starting with { means JSON Lines."""
    assert detect_format("a.csv", "{") == "csv"
    assert detect_format("a.ndjson", "x,y") == "jsonl"
    assert detect_format("", '\n  {"a": 1}') == "jsonl"
    assert detect_format("job.txt", "conversationId,content") == "csv"


def test_csv_line_numbers_follow_multiline_records(tmp_path: Path) -> None:
    """CSV bad-record line numbers are the physical line the record starts on."""
    path = tmp_path / "job.csv"
    path.write_text('conversationId,content\nc,"a\nb"\nc,\nc,ok\n', encoding="utf-8")
    lines = list(JobSource(str(path)).lines())
    assert [(line.number, line.problem is None) for line in lines] == [
        (2, True),
        (4, False),
        (5, True),
    ]
