"""The bulk journal: identities, torn lines, corruption, locking and group commit."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from opentrain_async._cli._input import JobSource, detect_format
from opentrain_async._cli._job import JobOptions, execute
from opentrain_async._cli._journal import (
    FileJournalStore,
    InputIdentity,
    JournalError,
    StoredRecords,
    content_hash,
    identity,
    load_journal,
    open_journal,
)
from opentrain_async._config import Settings, api_root
from opentrain_async.testing import FakeOpenTrain

JOB = InputIdentity("/jobs/job.jsonl", "http://127.0.0.1:1/api/public/v1")


def _header(job: InputIdentity = JOB) -> dict[str, object]:
    return {"journal": "opentrain-async", "format": 2, "input": job.as_record(), "at": 0.0}


def test_identity_is_the_key_when_there_is_one() -> None:
    """A keyed input is identified by its key alone, whatever its line or content."""
    assert identity("invoice-7", content_hash("c", "x"), 0) == "key:invoice-7"
    assert identity("invoice-7", content_hash("d", "y"), 3) == "key:invoice-7"


def test_identity_without_key_is_content_and_occurrence() -> None:
    """Without a key: SHA-256 of conversationId NUL content, and which occurrence it is."""
    digest = content_hash("conv_1", "hello")
    assert identity(None, digest, 1) == f"c:{digest}:1"
    assert identity(None, digest, 2) != identity(None, digest, 1)
    assert content_hash("conv_1", "hello") != content_hash("conv_1h", "ello")
    assert content_hash("conv_1", "hello") != content_hash("conv_2", "hello")
    assert len(digest) == 64


def test_identity_hash_accepts_lone_surrogates() -> None:
    """JSON may carry lone surrogates; hashing them must not raise."""
    assert len(content_hash("c", "\ud83d")) == 64


def _write(path: Path, *records: object, tail: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


async def _load(path: Path) -> object:
    return await load_journal(FileJournalStore(path))


async def test_load_follows_started_and_ended(tmp_path: Path) -> None:
    """started then ended ok is delivered; started alone is open; a non-final failure retries."""
    path = tmp_path / "j.jsonl"
    _write(
        path,
        _header(),
        {"event": "run", "at": 1.0},
        {"event": "started", "id": "a", "at": 10.0},
        {"event": "ended", "id": "a", "ok": True, "messageId": "m1", "at": 11.0},
        {"event": "started", "id": "b", "at": 12.0},
        {"event": "started", "id": "c", "at": 13.0},
        {"event": "ended", "id": "c", "ok": False, "kind": "unauthorized", "final": False, "at": 1},
        {"event": "started", "id": "b", "at": 20.0},
    )
    state = await load_journal(FileJournalStore(path))
    assert state.runs == 1
    assert state.inputs["a"].ok
    assert state.delivered_ids == {"m1"}
    b = state.inputs["b"]
    assert (b.open, b.first_started, b.last_started) == (True, 12.0, 20.0)
    c = state.inputs["c"]
    assert (c.ok, c.open, c.final, c.kind) == (False, False, False, "unauthorized")


async def test_torn_last_line_is_ignored_and_cut(tmp_path: Path) -> None:
    """A partial final line (killed mid-write) is ignored, then cut before appending."""
    path = tmp_path / "j.jsonl"
    _write(path, _header(), {"event": "started", "id": "a", "at": 1.0}, tail='{"event": "en')
    journal, state = await open_journal(FileJournalStore(path), JOB)
    assert state.torn_tail
    assert state.inputs["a"].open
    await journal.ended_ok("a", "m1", reconciled=True)
    await journal.aclose()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2])["messageId"] == "m1"
    assert (await load_journal(FileJournalStore(path))).inputs["a"].ok


async def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    """Garbage before the last line is not a torn write: refuse to guess."""
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(_header()) + '\nnot json\n{"event": "run", "at": 2}\n')
    with pytest.raises(JournalError, match="not valid"):
        await load_journal(FileJournalStore(path))


async def test_missing_journal_is_empty(tmp_path: Path) -> None:
    """A journal that does not exist yet is an empty state, not an error; reading it
    creates nothing."""
    state = await load_journal(FileJournalStore(tmp_path / "new.jsonl"))
    assert state.inputs == {}
    assert not state.torn_tail
    assert not (tmp_path / "new.jsonl").exists()


@pytest.mark.parametrize(
    "content",
    [
        '{"conversationId": "conv_1", "content": "the job file itself"}',  # no newline
        "meeting notes, one line",
        "line one\nline two\n",
        '{"conversationId": "conv_1", "content": "x"}\n{"conversationId": "c", "con',
    ],
)
async def test_a_file_that_is_not_a_journal_is_never_touched(tmp_path: Path, content: str) -> None:
    """Pointed at a file that is not one of our journals (a job file, notes without a
    trailing newline), the journal refuses it and leaves every byte in place."""
    path = tmp_path / "notes.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(JournalError, match="not a journal written by opentrain-async"):
        await open_journal(FileJournalStore(path), JOB)
    assert path.read_text(encoding="utf-8") == content


async def test_old_format_journal_is_refused_unchanged(tmp_path: Path) -> None:
    """A format-1 journal (no header, line-number identities) is named and left alone."""
    path = tmp_path / "old.journal"
    _write(path, {"event": "run", "at": 1.0}, tail='{"event": "sta')
    before = path.read_bytes()
    with pytest.raises(JournalError, match="format 1"):
        await open_journal(FileJournalStore(path), JOB)
    assert path.read_bytes() == before


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/null", "fifo", "directory"])
async def test_journal_refuses_anything_but_a_regular_file(tmp_path: Path, special: str) -> None:
    """/dev/zero, a FIFO or a directory is refused at once (no hang, no endless read)."""
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif special == "directory":
        path = tmp_path / "dir"
        path.mkdir()
    else:
        path = Path(special)
    with pytest.raises(JournalError, match=r"not a regular file|is a directory"):
        await asyncio.wait_for(open_journal(FileJournalStore(path), JOB), 10)


async def test_new_journal_starts_with_its_header(tmp_path: Path) -> None:
    """A new journal's first record marks it as ours, with the format and the input."""
    path = tmp_path / "j.journal"
    journal, state = await open_journal(FileJournalStore(path), JOB)
    await journal.aclose()
    header = json.loads(path.read_text().splitlines()[0])
    assert header["journal"] == "opentrain-async"
    assert header["format"] == 2
    assert header["input"] == {"path": JOB.path, "apiRoot": JOB.api_root}
    assert state.header == header
    assert os.listdir(tmp_path) == ["j.journal"], "the temporary file is left behind"


async def test_an_empty_existing_file_becomes_a_journal(tmp_path: Path) -> None:
    """An empty file (touch) holds nothing to lose: it gets the header."""
    path = tmp_path / "j.journal"
    path.touch()
    journal, _ = await open_journal(FileJournalStore(path), JOB)
    await journal.aclose()
    assert json.loads(path.read_text())["journal"] == "opentrain-async"


async def test_journal_for_another_input_is_refused_unless_reused(tmp_path: Path) -> None:
    """A journal written for another input file (or API) is refused, unless told."""
    path = tmp_path / "j.journal"
    journal, _ = await open_journal(FileJournalStore(path), JOB)
    await journal.aclose()
    other = InputIdentity("/jobs/other.jsonl", JOB.api_root)
    with pytest.raises(JournalError, match=r"written for the input /jobs/job\.jsonl"):
        await open_journal(FileJournalStore(path), other)
    elsewhere = InputIdentity(JOB.path, "https://app.opentrain.ai/api/public/v1")
    with pytest.raises(JournalError, match=r"sent to http://127\.0\.0\.1:1"):
        await open_journal(FileJournalStore(path), elsewhere)
    journal, _ = await open_journal(FileJournalStore(path), other, reuse=True)
    await journal.aclose()


async def test_second_writer_is_refused(tmp_path: Path) -> None:
    """Two runs cannot append to one journal at once."""
    path = tmp_path / "j.jsonl"
    first, _ = await open_journal(FileJournalStore(path), JOB)
    try:
        with pytest.raises(JournalError, match="in use"):
            await open_journal(FileJournalStore(path), JOB)
    finally:
        await first.aclose()


class CountingStore(FileJournalStore):
    """The file store, counting durable writes."""

    writes = 0

    async def append(self, records: object) -> None:
        self.writes += 1
        await super().append(records)  # type: ignore[arg-type]


async def test_concurrent_appends_are_whole_lines_and_group_committed(tmp_path: Path) -> None:
    """Many concurrent appends all land intact, in far fewer durable writes than records."""
    path = tmp_path / "j.jsonl"
    store = CountingStore(path)
    journal, _ = await open_journal(store, JOB)
    await asyncio.gather(
        *(journal.started(f"key:{i}", i, "conv", "0" * 64, float(i)) for i in range(300))
    )
    await journal.aclose()
    state = await load_journal(FileJournalStore(path))
    assert len(state.inputs) == 300
    assert all(p.open for p in state.inputs.values())
    assert journal.records == 300
    assert store.writes < 30


async def test_journal_file_is_private(tmp_path: Path) -> None:
    """The journal is created with mode 0600."""
    path = tmp_path / "j.jsonl"
    journal, _ = await open_journal(FileJournalStore(path), JOB)
    await journal.aclose()
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


class MemoryJournalStore:
    """A JournalStore in memory: proves the job logic needs nothing but the interface."""

    def __init__(self) -> None:
        self.name = "memory"
        self.records: list[dict[str, object]] = []
        self.owned = False
        self.appends = 0

    async def open(self) -> None:
        if self.owned:
            raise JournalError("journal memory is in use by another running job")
        self.owned = True

    async def read(self) -> StoredRecords:
        return StoredRecords([dict(r) for r in self.records])

    async def create(self, header: Mapping[str, object]) -> None:
        assert not self.records
        self.records.append(dict(header))

    async def append(self, records: Sequence[Mapping[str, object]]) -> None:
        assert self.records, "append before a header"
        self.appends += 1
        self.records.extend(dict(r) for r in records)

    async def close(self) -> None:
        self.owned = False


async def test_the_job_runs_on_any_journal_store(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A bulk job journals through the five-method interface: the second run with the same
    store sends nothing, and an edited input is identified by content there too."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(
        "".join(json.dumps({"conversationId": conv, "content": f"m{i}"}) + "\n" for i in range(12))
    )
    store = MemoryJournalStore()
    options = JobOptions(concurrency=4, journal_store=store)
    settings = Settings(server.token, api_root(server.base_url), "test")
    first = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert first.sent == 12
    assert store.records[0]["journal"] == "opentrain-async"
    assert not store.owned
    assert store.appends < len(store.records)  # group commit through the interface
    job.write_text(json.dumps({"conversationId": conv, "content": "new"}) + "\n" + job.read_text())
    second = await execute(JobSource(str(job)), options, settings, err=io.StringIO())
    assert (second.sent, second.skipped_delivered) == (1, 12)
    assert len(server.messages(conv)) == 13


class FailingStore(MemoryJournalStore):
    """A store whose disk fills up after the header."""

    async def append(self, records: Sequence[Mapping[str, object]]) -> None:
        raise OSError(28, "No space left on device")


async def test_a_failed_journal_write_is_never_silent() -> None:
    """A write that fails, even one nobody waited for (an `ended` record), is raised by
    the next append and by aclose: a run never goes on believing its journal."""
    journal, _ = await open_journal(FailingStore(), JOB)
    await journal.ended_ok("key:a", "m1", reconciled=False)  # not waited for
    with pytest.raises(JournalError, match="No space left"):
        await journal.started("key:b", 2, "conv", "0" * 64, 1.0)
    await journal.aclose()  # already raised once: closing in a `finally` does not mask it
    quiet, _ = await open_journal(FailingStore(), JOB)
    await quiet.ended_ok("key:a", "m1", reconciled=False)  # the last record, not waited for
    with pytest.raises(JournalError, match="No space left"):
        await quiet.aclose()  # nobody was told yet: closing says it


async def test_a_journal_in_use_can_still_be_read_for_a_dry_run(tmp_path: Path) -> None:
    """--dry-run reads a journal without its lock, so it works while a job runs."""
    path = tmp_path / "j.journal"
    running, _ = await open_journal(FileJournalStore(path), JOB)
    try:
        await running.started("key:a", 1, "conv", "0" * 64, 1.0)
        state = await load_journal(FileJournalStore(path, read_only=True))
        assert state.inputs["key:a"].open
    finally:
        await running.aclose()
