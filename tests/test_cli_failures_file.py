"""The --failures file is safe to ask for: private (0600) whatever was there, never the
job file itself, checked writable before anything is sent, and the input's own
columns kept as they were (the outcome is nested), so the round trip still works."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl


def _job(server: FakeOpenTrain, path: Path) -> tuple[Path, str]:
    conv = server.add_conversation()
    records = [
        {"conversationId": conv, "content": "fine", "line": "L-7", "reason": "invoice"},
        {"conversationId": "conv_gone", "content": "lost", "error": "my column"},
    ]
    return write_jsonl(path, records), conv


async def test_an_existing_failures_file_becomes_private(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """It kept 0644 while holding message content; now it is replaced, mode 0600."""
    job, _ = _job(server, tmp_path / "job.jsonl")
    failures = tmp_path / "failures.jsonl"
    failures.write_text("old\n")
    failures.chmod(0o644)
    result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    assert result.code == 1, result.err
    assert failures.stat().st_mode & 0o777 == 0o600
    assert "lost" in failures.read_text()


@pytest.mark.parametrize("how", ["same path", "hard link"])
async def test_failures_naming_the_job_file_is_refused_before_sending(
    server: FakeOpenTrain, tmp_path: Path, how: str
) -> None:
    """`--failures job.jsonl` on a run with no failures deleted the job file.  Now it
    is a usage error before any request, and the job file is untouched."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "ok"}])
    before = job.read_bytes()
    target = job
    if how == "hard link":
        target = tmp_path / "alias.jsonl"
        os.link(job, target)
    result = await cli("bulk", str(job), "--failures", str(target), server=server)
    assert result.code == 2, result.err
    assert "is the job file itself" in result.err
    assert job.read_bytes() == before
    assert server.stats()["sends"] == 0


async def test_an_unwritable_failures_file_is_refused_before_sending(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """It exited 2 only after the job was sent (its failures then lost).  Now exit 2
    before anything is sent."""
    job, _ = _job(server, tmp_path / "job.jsonl")
    missing_dir = tmp_path / "no such dir" / "failures.jsonl"
    result = await cli("bulk", str(job), "--failures", str(missing_dir), server=server)
    assert result.code == 2, result.err
    assert "cannot be written" in result.err
    assert server.stats()["sends"] == 0
    directory = tmp_path / "a dir"
    directory.mkdir()
    result = await cli("bulk", str(job), "--failures", str(directory), server=server)
    assert result.code == 2, result.err
    assert server.stats()["sends"] == 0


async def test_input_columns_named_like_the_outcome_are_kept(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Input columns `line`, `reason`, `error` were overwritten by the outcome; now the
    outcome is nested under "opentrain" and the row, fixed and fed back, is sent with
    its own columns intact."""
    job, conv = _job(server, tmp_path / "job.jsonl")
    failures = tmp_path / "failures.jsonl"
    result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    assert result.code == 1, result.err
    [row] = [json.loads(x) for x in failures.read_text().splitlines()]
    assert row["error"] == "my column"
    assert (row["opentrain"]["line"], row["opentrain"]["reason"]) == (2, "not_found")
    write_jsonl(failures, [{**row, "conversationId": conv}])
    again = await cli("bulk", str(failures), "--json", server=server)
    assert (again.code, again.json()["sent"]) == (0, 1), again.err
    assert server.stats()["duplicates"] == 0


async def test_csv_outcome_columns_are_prefixed(server: FakeOpenTrain, tmp_path: Path) -> None:
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(
        f"conversationId,content,line,reason\n{conv},fine,a,b\nconv_gone,lost,c,d\n",
        encoding="utf-8",
    )
    failures = tmp_path / "failures.csv"
    result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    assert result.code == 1, result.err
    with failures.open(newline="", encoding="utf-8") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["line"], row["reason"]) == ("c", "d")
    assert (row["opentrain.line"], row["opentrain.reason"]) == ("3", "not_found")
    rows = failures.read_text().replace("conv_gone", conv)
    failures.write_text(rows)
    again = await cli("bulk", str(failures), "--json", server=server)
    assert (again.code, again.json()["sent"]) == (0, 1), again.err


async def test_failures_naming_the_journal_is_refused_before_sending(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--failures on the journal's own path would replace the journal with failures
    rows (and a rerun would send everything again): refused, nothing sent."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "ok"}])
    journal = tmp_path / "job.journal"
    result = await cli(
        "bulk", str(job), "--journal", str(journal), "--failures", str(journal), server=server
    )
    assert result.code == 2, result.err
    assert "is this job's journal" in result.err
    assert server.stats()["sends"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
async def test_a_failures_file_in_a_read_only_directory_is_refused_before_sending(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The file itself is writable but its directory is not (the file is replaced
    whole): refused before sending, not after."""
    job, _ = _job(server, tmp_path / "job.jsonl")
    locked = tmp_path / "locked"
    locked.mkdir()
    failures = locked / "failures.jsonl"
    failures.write_text("")
    locked.chmod(0o500)
    try:
        result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    finally:
        locked.chmod(0o700)
    assert result.code == 2, result.err
    assert "cannot be written" in result.err
    assert server.stats()["sends"] == 0
