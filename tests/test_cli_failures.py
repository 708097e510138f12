"""Failures an operator can act on: which line, key and conversation, why, and a file
of them ready to be fixed and fed back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


def _job(server: FakeOpenTrain, path: Path) -> tuple[Path, str, str]:
    conv = server.add_conversation()
    closed = server.add_conversation(send_block="read_only_conversation")
    records: list[object] = [{"conversationId": conv, "content": f"m {i}"} for i in range(30)]
    records[4] = {"conversationId": "conv_gone", "content": "to nowhere", "key": "k-gone"}
    records[11] = {"conversationId": closed, "content": "too late", "key": "k-closed"}
    records[20] = '{"conversationId": "conv_1", "content": '  # invalid JSON
    records[25] = {"conversationId": conv, "content": ""}
    return write_jsonl(path, records), conv, closed


async def test_summary_names_each_failure_and_json_lists_them_all(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The human summary shows failed lines with key, conversation and reason; --json
    carries every failure."""
    job, _, closed = _job(server, tmp_path / "job.jsonl")
    env = cli_env(server, tmp_path)
    human = await run_cli("bulk", str(job), "--no-journal", env=env)
    assert human.code == 1
    assert "line 5 key 'k-gone' to conv_gone: not_found" in human.out
    assert f"line 12 key 'k-closed' to {closed}: read_only_conversation" in human.out
    result = await run_cli("bulk", str(job), "--no-journal", "--json", env=env)
    failures = result.json()["failures"]
    assert {(f["line"], f["reason"]) for f in failures} == {
        (5, "not_found"),
        (12, "read_only_conversation"),
    }
    assert [b["line"] for b in result.json()["badLines"]] == [21, 26]
    assert "to nowhere" not in result.out + human.out  # no message content unless asked


async def test_failures_file_can_be_fixed_and_fed_back(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--failures FILE holds each input not delivered, in the input format, with line,
    key and reason; fixed and fed back, it delivers exactly those."""
    job, conv, closed = _job(server, tmp_path / "job.jsonl")
    failures = tmp_path / "failures.jsonl"
    env = cli_env(server, tmp_path)
    result = await run_cli("bulk", str(job), "--failures", str(failures), env=env)
    assert result.code == 1
    assert f"4 input(s) not delivered written to {failures}" in result.err
    rows = [json.loads(line) for line in failures.read_text().splitlines()]
    # The outcome is nested (the input may have columns named line, reason, error).
    assert [(r["opentrain"]["line"], r["opentrain"]["reason"]) for r in rows] == [
        (5, "not_found"),
        (12, "read_only_conversation"),
        (21, "invalid"),
        (26, "invalid"),
    ]
    assert rows[0]["key"] == "k-gone"
    assert rows[2]["raw"] == '{"conversationId": "conv_1", "content": '
    assert failures.stat().st_mode & 0o777 == 0o600
    assert server.token not in failures.read_text() + result.err + result.out
    # The operator fixes the file and feeds it back.
    server.conversation(closed).send_block = None
    fixed = [
        {**rows[0], "conversationId": conv},
        rows[1],
        {"conversationId": conv, "content": "repaired line 21"},
        {**rows[3], "content": "no longer empty"},
    ]
    write_jsonl(failures, fixed)
    again = await run_cli("bulk", str(failures), "--json", env=env)
    assert again.code == 0, again.err
    assert again.json()["sent"] == 4
    assert server.stats()["duplicates"] == 0


async def test_failures_file_for_csv_is_csv(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A CSV job's failures come back as CSV with the same columns plus line and reason."""
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(
        f"conversationId,content,key\n{conv},fine,a\nconv_gone,lost,b\n", encoding="utf-8"
    )
    failures = tmp_path / "failures.csv"
    result = await run_cli(
        "bulk", str(job), "--failures", str(failures), env=cli_env(server, tmp_path)
    )
    assert result.code == 1
    with failures.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {
            "conversationId": "conv_gone",
            "content": "lost",
            "key": "b",
            "opentrain.line": "3",
            "opentrain.reason": "not_found",
            "opentrain.error": rows[0]["opentrain.error"],
            "opentrain.id": "key:b",
        }
    ]
    assert "404" in rows[0]["opentrain.error"]
