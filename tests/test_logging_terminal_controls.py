"""Request ids and reasons a hostile server chose reach logs and the CLI escaped, never as
terminal controls; OPENTRAIN_LOG switches the CLI's logging on once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from opentrain_async import (
    configure_logging_from_env,
)
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli

# -- request ids a hostile server chose ------------------------------------------------------

HOSTILE_ID = b"\x1b]0;PWNED\x07\x1b[31mRED"


@pytest.fixture
async def throttling_socket() -> AsyncIterator[str]:
    """A raw loopback server answering every request 429 (retry after 10 ms) with a
    request id holding terminal controls (an OSC retitle, BEL, a colour)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"error":"slow","details":{"retryAfterSeconds":0.01}}'
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: "
            + HOSTILE_ID
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("opentrain_log", [None, "info"])
async def test_the_cli_never_prints_a_request_id_s_terminal_controls(
    throttling_socket: str, tmp_path: Path, opentrain_log: str | None
) -> None:
    """``opentrain-async send`` retrying 429s quotes the server's request id in its
    "retrying in ..." line (and, with OPENTRAIN_LOG=info, in the SDK's log line): escaped,
    never raw (it printed ESC and BEL, retitling the user's terminal)."""
    env = cli_env(None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL=throttling_socket)
    if opentrain_log:
        env["OPENTRAIN_LOG"] = opentrain_log
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 1
    assert "retrying in" in result.err
    assert "\x1b" not in result.err
    assert "\x07" not in result.err
    assert "\\x1b]0;PWNED\\x07" in result.out + result.err  # shown, as text


def test_opentrain_log_s_handler_escapes_what_a_server_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stderr handler ``OPENTRAIN_LOG`` installs in an application: a request id with
    a newline and an escape cannot forge a log line or drive the terminal."""
    logger = logging.getLogger("opentrain_async")
    level, handlers = logger.level, logger.handlers[:]
    logger.handlers.clear()
    try:
        configure_logging_from_env({"OPENTRAIN_LOG": "info"})
        logger.info("retrying (request_id=%s)", "a\nFAKE 2026 CRITICAL pwned\x1b[2J")
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "\x1b" not in err
    assert "request_id=a\\nFAKE 2026 CRITICAL pwned\\x1b[2J" in err


@pytest.mark.parametrize("json_flag", [False, True], ids=["summary", "json"])
async def test_bulk_s_failure_lines_never_print_the_server_s_terminal_controls(
    server: FakeOpenTrain, tmp_path: Path, json_flag: bool
) -> None:
    """``opentrain-async bulk``'s "not delivered:" lines quote the server's message,
    reason and request id: escaped (they printed ESC/BEL raw: a 409 could retitle and
    clear the terminal of whoever ran the job)."""
    convs = [server.add_conversation() for _ in range(3)]
    server.script(
        "POST /messages",
        status=409,
        json={
            "error": "blocked \x1b]0;PWNED\x07\x1b[2J",
            "code": "CONFLICT",
            "requestId": "rid\x1b[31m",
            "details": {"reason": "odd\x1b[5m"},
        },
        times=3,
    )
    job = tmp_path / "job.jsonl"
    job.write_text("".join(f'{{"conversationId": "{c}", "content": "hi"}}\n' for c in convs))
    args = ["bulk", str(job), "--no-journal", *(["--json"] if json_flag else [])]
    result = await run_cli(*args, env=cli_env(server, tmp_path))
    assert result.code == 1
    for control in ("\x1b", "\x07"):
        assert control not in result.out + result.err
    assert "\\x1b]0;PWNED\\x07" in result.out + result.err  # shown, as text


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["plain", "-v"])
async def test_opentrain_log_switches_the_cli_s_logging_on_once(
    server: FakeOpenTrain, tmp_path: Path, verbose: list[str]
) -> None:
    """``OPENTRAIN_LOG=debug opentrain-async send ...``: each request logged once with its
    request id (the CLI silenced it without -v, and printed every line twice with -v)."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path, OPENTRAIN_LOG="debug")
    result = await run_cli("send", *verbose, conv, "hi", env=env)
    assert result.code == 0, result.err
    assert result.err.count("POST /messages -> 201") == 1
    assert server.token not in result.err
