"""A Redis password full of URL syntax (``/``, ``@``, ``%``, ``#``, percent-encoded in the
URL as it must be) never reaches the CLI's log lines, text or JSON, at any verbosity,
when the shared pacing store or the journal's Redis cannot be reached."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import quote

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl

PASSWORD = "p@ss/w#rd%41?x=1"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _leaks(text: str) -> list[str]:
    forms = {PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), PASSWORD.replace("/", "\\/")}
    return [form for form in forms if form in text]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_an_unreachable_pacing_store_logs_no_password(
    server: FakeOpenTrain, tmp_path: Path, log_format: str
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{_closed_port()}/0"
    result = await run_cli(
        "bulk", str(job), "--no-journal", "--pacing-url", url, "-vv", "--log-format", log_format,
        env=cli_env(server, tmp_path),
    )  # fmt: skip
    assert "Redis" in result.err  # the fallback was logged
    assert _leaks(result.out + result.err) == []


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_an_unreachable_redis_journal_logs_no_password(
    server: FakeOpenTrain, tmp_path: Path, log_format: str
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{_closed_port()}/0?job=j1"
    result = await run_cli(
        "bulk", str(job), "--journal", url, "-vv", "--log-format", log_format,
        env=cli_env(server, tmp_path),
    )  # fmt: skip
    assert result.code == 3, result.err
    assert "Traceback" not in result.err
    assert _leaks(result.out + result.err) == []
    assert server.stats()["sends"] == 0
