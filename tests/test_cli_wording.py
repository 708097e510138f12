"""What the command line says when something is off: shell words, one wording per case,
usage errors exit 2 (issue 14)."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT, assert_one_line_error, cli_env, run_cli, write_jsonl


async def test_no_token_names_the_variables_not_a_python_argument(tmp_path: Path) -> None:
    """Without a token the CLI says to set OT_API_TOKEN, never to 'pass api_token=...'."""
    result = await run_cli("send", "conv_1", "hi", env=cli_env(None, tmp_path))
    assert result.code == 3
    assert_one_line_error(result)
    assert "set OT_API_TOKEN" in result.err
    assert "api_token=" not in result.err


async def test_a_401_reads_the_same_from_every_command(tmp_path: Path) -> None:
    """send, conversations, messages and bulk word a rejected token identically."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        env = cli_env(server, tmp_path, OT_API_TOKEN="ot_pat_revoked_123")
        job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
        results = [
            await run_cli(*args, env=env)
            for args in (
                ["send", conv, "hi"],
                ["conversations"],
                ["messages", conv],
                ["bulk", str(job)],
            )
        ]
    expected = (
        "opentrain-async: error: authentication failed: the API token (from $OT_API_TOKEN) "
        f"was rejected by {server.api_url} (401)"
    )
    for result in results:
        assert result.code == 3
        assert_one_line_error(result)
        assert result.err.strip() == expected
        assert "ot_pat_revoked_123" not in result.err


@pytest.mark.parametrize(
    "args",
    [
        ["send", "--token", "ot_pat_secret_1", "c", "t"],
        ["send", "c", "t", "--token", "ot_pat_secret_1"],
        ["send", "c", "t", "--token=ot_pat_secret_1"],
        ["bulk", "job.jsonl", "--api-token", "ot_pat_secret_1"],
    ],
)
async def test_a_token_flag_points_to_the_environment(tmp_path: Path, args: list[str]) -> None:
    """--token is a usage error (2) that says where the token goes, and never echoes it."""
    result = await run_cli(*args, env=cli_env(None, tmp_path))
    assert result.code == 2
    assert "set OT_API_TOKEN=" in result.err
    assert "never a flag" in result.err
    assert "ot_pat_secret_1" not in result.err + result.out


async def test_a_malformed_base_url_flag_is_a_usage_error(tmp_path: Path) -> None:
    """--base-url that is no URL exits 2 (usage), one line, before anything else."""
    result = await run_cli("--base-url", "ftp://x y", "conversations", env=cli_env(None, tmp_path))
    assert result.code == 2
    assert_one_line_error(result)
    assert "--base-url" in result.err


async def test_demo_offers_no_base_url_and_refuses_one(tmp_path: Path) -> None:
    """demo --help does not list --base-url, and passing one is a usage error, not ignored."""
    env = cli_env(None, tmp_path)
    helped = await run_cli("demo", "--help", env=env)
    assert helped.code == 0
    assert "--base-url" not in helped.out
    refused = await run_cli("--base-url", "http://127.0.0.1:9", "demo", env=env)
    assert refused.code == 2
    assert "does not apply" in refused.err
    unknown = await run_cli("demo", "--base-url", "http://127.0.0.1:9", env=env)
    assert unknown.code == 2


@pytest.mark.process
async def test_send_prompts_when_reading_the_text_from_a_terminal(tmp_path: Path) -> None:
    """`send CONV` on a terminal says what it waits for, then sends what was typed."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        controller, terminal = pty.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "opentrain_async",
                "send",
                conv,
                stdin=terminal,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=cli_env(server, tmp_path),
                cwd=ROOT,
            )
            assert proc.stderr is not None
            prompt = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert b"type the message" in prompt
            os.write(controller, b"typed on a terminal\n\x04")
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            os.close(controller)
            os.close(terminal)
    assert proc.returncode == 0
    assert b"sent msg_" in out
    assert server.messages(conv)[0]["content"] == "typed on a terminal"


async def test_bad_lines_say_one_line_number_and_hint_at_snake_case(tmp_path: Path) -> None:
    """A JSON error names the file's line and only a column; conversation_id gets a hint."""
    job = write_jsonl(
        tmp_path / "job.jsonl",
        [
            {"conversation_id": "c1", "content": "x"},
            '{"conversationId": "conv_0001", "content": "unterminated',
        ],
    )
    result = await run_cli("bulk", str(job), "--dry-run", env=cli_env(None, tmp_path))
    assert result.code == 2
    lines = result.out.splitlines()
    assert lines[0] == (
        "line 1: missing field 'conversationId' "
        "(found 'conversation_id'; the API's name is 'conversationId')"
    )
    assert lines[1] == (
        "line 2: invalid JSON: a string is not closed at the end of the line (it ends at column 56)"
    )
    assert "line 1 column" not in result.out


async def test_dry_run_without_a_journal_says_nothing_about_one(tmp_path: Path) -> None:
    """--dry-run mentions the journal only when there is one."""
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "c1", "content": "x"}])
    env = cli_env(None, tmp_path)
    plain = await run_cli("bulk", str(job), "--dry-run", "--no-journal", env=env)
    assert plain.code == 0
    assert "journal" not in plain.out
    assert "would send 1" in plain.out
    journaled = await run_cli(
        "bulk", str(job), "--dry-run", "--journal", str(tmp_path / "j"), env=env
    )
    assert "journal: 0 already delivered" in journaled.out


@pytest.mark.parametrize(
    ("name", "text"),
    [("empty.jsonl", ""), ("blank.jsonl", "\n  \n"), ("rows.csv", "conversationId,content\n")],
)
async def test_an_empty_job_is_a_usage_error(tmp_path: Path, name: str, text: str) -> None:
    """A job with no inputs exits 2 saying so (a wrong file, not a success)."""
    job = tmp_path / name
    job.write_text(text, encoding="utf-8")
    for extra in ([], ["--dry-run"]):
        result = await run_cli(
            "bulk", str(job), *extra, env=cli_env(None, tmp_path, OT_API_TOKEN="ot_pat_x")
        )
        assert result.code == 2
        assert_one_line_error(result)
        assert "has no inputs" in result.err


async def test_retry_failed_needs_a_journal(tmp_path: Path) -> None:
    """--retry-failed with no journal to read (--no-journal, or stdin without --journal) is a
    usage error, not silently ignored."""
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "c1", "content": "x"}])
    env = cli_env(None, tmp_path)
    opted_out = await run_cli("bulk", str(job), "--retry-failed", "--no-journal", env=env)
    assert opted_out.code == 2
    assert_one_line_error(opted_out)
    assert "drop --no-journal" in opted_out.err
    piped = await run_cli("bulk", "-", "--retry-failed", env=env, stdin=job.read_text())
    assert piped.code == 2
    assert_one_line_error(piped)
    assert "add --journal PATH" in piped.err
