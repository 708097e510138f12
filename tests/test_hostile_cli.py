"""The command line against careless input, as a subprocess: one line, never a traceback.

Arguments that are not UTF-8 reach Python as lone surrogates (``os.fsdecode``); they are
passed here the same way, so the child process sees the raw bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import Result, assert_one_line_error, cli_env, run_cli, write_jsonl

SECRET = "S3CRETPART"
PASSWORD = "pa55-S3CRET"
NOT_UTF8 = os.fsdecode(b"caf\xe9")  # Latin-1 bytes in a UTF-8 locale


def assert_clean(result: Result, *secrets: str) -> None:
    """No traceback, and no secret anywhere in the output."""
    assert "Traceback" not in result.err
    for secret in secrets:
        assert secret not in result.out
        assert secret not in result.err


def write_cli_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "xdg" / "opentrain" / "cli.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(mode)
    return path


async def test_a_token_with_a_newline_is_one_line_exit_3(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """OT_API_TOKEN with a newline inside: exit 3, one line naming the variable, no token."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path, OT_API_TOKEN=f"ot_pat_x\n{SECRET}")
    result = await run_cli("send", conv, "hi", env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "$OT_API_TOKEN" in result.err
    assert_clean(result, SECRET)
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize("how", ["env", "flag"])
async def test_a_base_url_with_a_password_is_one_line_exit_3(
    server: FakeOpenTrain, tmp_path: Path, how: str
) -> None:
    """user:password@ in the base URL (env or --base-url): exit 3, the password never shown."""
    url = server.base_url.replace("http://", f"http://me:{PASSWORD}@")
    env = cli_env(server, tmp_path)
    args = ["conversations"]
    if how == "env":
        env["OT_API_BASE_URL"] = url
    else:
        args = ["--base-url", url, *args]
    result = await run_cli(*args, env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "user:password@" in result.err
    assert_clean(result, PASSWORD, server.token)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["send", "conv_1", NOT_UTF8], "content"),
        (["send", NOT_UTF8, "hi"], "conversationId"),
        (["messages", NOT_UTF8], "conversationId"),
    ],
)
async def test_an_argument_that_is_not_utf8_is_a_usage_error(
    server: FakeOpenTrain, tmp_path: Path, args: list[str], field: str
) -> None:
    """Undecodable bytes in an argument: exit 2, one line naming the field; nothing sent."""
    result = await run_cli(*args, env=cli_env(server, tmp_path))
    assert result.code == 2, result.err
    assert_one_line_error(result)
    assert field in result.err
    assert "lone surrogate" in result.err
    assert server.stats()["requests"] == 0


async def test_a_base_url_that_is_not_utf8_is_one_line_exit_3(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """--base-url with undecodable bytes: exit 3, one line."""
    url = f"http://{NOT_UTF8}.example"
    result = await run_cli("--base-url", url, "conversations", env=cli_env(server, tmp_path))
    assert result.code == 3
    assert_one_line_error(result)


async def test_a_cli_file_that_is_not_utf8_is_one_line_exit_3(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A Latin-1 cli.json: exit 3, one line naming the file."""
    path = write_cli_file(tmp_path, b'{"apiToken": "ot_pat_caf\xe9"}')
    env = cli_env(None, tmp_path, OT_API_BASE_URL=server.base_url)
    result = await run_cli("conversations", env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert str(path) in result.err
    assert "not UTF-8" in result.err


async def test_a_cli_file_readable_by_others_is_warned_about(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A 0644 cli.json still works, with a warning to chmod 600 it; 0600 is silent."""
    conv = server.add_conversation()
    path = write_cli_file(tmp_path, json.dumps({"apiToken": server.token}).encode(), 0o644)
    env = cli_env(None, tmp_path, OT_API_BASE_URL=server.base_url)
    result = await run_cli("send", conv, "hi", env=env)
    assert result.code == 0, result.err
    assert f"chmod 600 {path}" in result.err
    assert_clean(result, server.token)
    path.chmod(0o600)
    result = await run_cli("send", conv, "hi", env=env)
    assert result.code == 0, result.err
    assert result.err == ""


@pytest.mark.parametrize(("name", "fmt"), [("job.csv", "csv"), ("job.jsonl", "jsonl")])
async def test_a_job_file_with_a_utf8_bom_is_read(
    server: FakeOpenTrain, tmp_path: Path, name: str, fmt: str
) -> None:
    """Excel's "CSV UTF-8" starts with a byte order mark: the job runs and delivers."""
    conv = server.add_conversation()
    if fmt == "csv":
        text = f"conversationId,content\r\n{conv},first\r\n{conv},second\r\n"
    else:
        rows = [{"conversationId": conv, "content": c} for c in ("first", "second")]
        text = "".join(json.dumps(row) + "\n" for row in rows)
    job = tmp_path / name
    job.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert sorted(m["content"] for m in server.messages(conv)) == ["first", "second"]


async def test_stdin_with_a_utf8_bom_is_read(server: FakeOpenTrain, tmp_path: Path) -> None:
    """The same job piped on stdin (- as FILE) is read too."""
    conv = server.add_conversation()
    stdin = f"\ufeffconversationId,content\n{conv},piped\n"
    result = await run_cli(
        "bulk", "-", "--format", "csv", "--dry-run", env=cli_env(None, tmp_path), stdin=stdin
    )
    assert result.code == 0, result.out + result.err
    assert "1 valid, 0 bad" in result.out


@pytest.mark.parametrize(
    "args", [["conversations", "--limit", "500"], ["messages", "conv_1", "--limit", "101"]]
)
async def test_a_page_size_over_100_is_a_usage_error(
    server: FakeOpenTrain, tmp_path: Path, args: list[str]
) -> None:
    """--limit beyond the API's 100 is refused by the parser: exit 2, nothing requested."""
    result = await run_cli(*args, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert "must be at most 100" in result.err
    assert "Traceback" not in result.err
    assert server.stats()["requests"] == 0


async def test_dry_run_reports_lone_surrogates_and_deep_nesting_as_bad_lines(
    tmp_path: Path,
) -> None:
    """A JSONL escape for a lone surrogate and a line nested 100,000 deep are bad lines."""
    job = write_jsonl(
        tmp_path / "job.jsonl",
        [
            {"conversationId": "conv_1", "content": "fine"},
            '{"conversationId": "conv_1", "content": "half an emoji \\ud83d"}',
            '{"conversationId": "conv_\\udcff", "content": "x"}',
            "[" * 100_000 + "]" * 100_000,
        ],
    )
    result = await run_cli("bulk", str(job), "--dry-run", "--json", env=cli_env(None, tmp_path))
    assert result.code == 2
    assert "Traceback" not in result.err
    report = result.json()
    assert (report["valid"], report["bad"]) == (1, 3)
    reasons = {line["line"]: line["reason"] for line in report["badLines"]}
    assert "content" in reasons[2]
    assert "lone surrogate" in reasons[2]
    assert "conversationId" in reasons[3]
    assert "invalid JSON" in reasons[4]
