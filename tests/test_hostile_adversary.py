"""Breaks found by an adversarial pass after issue 10, each kept fixed by a test.

Hostile servers (loopback, some raw TCP) echo the request's ``Authorization`` header
back, as debug pages and some proxies do, or send text meant for a terminal; careless
users hand over odd base URLs, ``cli.json`` files, job files, journals and arguments.
Exceptions are walked with their ``__cause__``/``__context__`` chains and attributes by
``find_secrets`` from ``test_hostile``, as an error reporter would; the CLI runs as a
subprocess.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from opentrain_async import (
    APIConnectionError,
    APIError,
    ConfigurationError,
    DeliveryUnknownError,
    OpenTrainClient,
    OpenTrainError,
    RateLimitError,
    RedirectError,
    RetryEvent,
    RetryPolicy,
    UnexpectedResponseError,
    WebhookVerificationError,
    sign_webhook_payload,
    verify_webhook_signature,
)
from opentrain_async._config import resolve_settings
from opentrain_async._listen import JSONFileCursorStore
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli
from .test_hostile import (
    MESSAGE,
    SECRETS,
    TOKEN,
    Arena,
    arena,
    caught,
    echoed,
    find_secrets,
)

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile

Echo = Callable[[str], web.Response]


def _envelope(status: int) -> Echo:
    def answer(auth: str) -> web.Response:
        body = {
            "error": f"invalid header: Authorization: {auth}",
            "code": "BAD",
            "requestId": auth,
            "details": {"reason": auth, "headers": {"authorization": auth}},
        }
        return web.json_response(body, status=status)

    return answer


def _html(status: int) -> Echo:
    def answer(auth: str) -> web.Response:
        return web.Response(status=status, text=f"<pre>{auth}</pre>", content_type="text/html")

    return answer


def _header(status: int, name: str) -> Echo:
    def answer(auth: str) -> web.Response:
        value = f"https://elsewhere.example/?h={auth}" if name == "Location" else auth
        return web.Response(status=status, text="{}", headers={name: value})

    return answer


ECHOES: dict[str, Echo] = {
    "400 envelope": _envelope(400),
    "401 envelope": _envelope(401),
    "409 envelope": _envelope(409),
    "429 envelope": _envelope(429),
    "500 envelope": _envelope(500),
    "502 html page": _html(502),
    "404 html page": _html(404),
    "302 Location": _header(302, "Location"),
    "404 X-Request-Id": _header(404, "X-Request-Id"),
    "200 X-Request-Id, body not JSON": lambda auth: web.Response(
        text="<html>", headers={"X-Request-Id": auth}
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
async def test_an_answer_that_echoes_the_token_never_puts_it_in_an_error(
    arena: Arena, echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's text reaches exceptions, retry events and logs with the token as ***."""
    caplog.set_level(logging.DEBUG, logger="opentrain_async")

    async def answer(request: web.Request) -> web.StreamResponse:
        return ECHOES[echo](request.headers["Authorization"])

    arena.hostile.handler = answer
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_retries=1, sleep=_no_wait, on_retry=events.append)
    errors: list[BaseException] = []
    async with arena.client(retry_policy=policy) as client:
        errors.append(await caught(client.whoami()))
        errors.append(await caught(client.send_message("conv_1", "hi")))
    errors += [event.error for event in events]
    for error in errors:
        assert list(find_secrets(error)) == [], error
    assert all(isinstance(error, OpenTrainError) for error in errors)
    # Still the error the status says, with the server's text (only the token masked).
    first = errors[0]
    if isinstance(first, RedirectError):
        assert first.location == "https://elsewhere.example/?h=Bearer ***"
    elif isinstance(first, APIError) and "envelope" in echo:
        assert first.message == "invalid header: Authorization: Bearer ***"
        assert first.request_id == "Bearer ***"
    if echo.startswith("429"):
        assert isinstance(first, RateLimitError)
        assert events  # retried, and the retry log line names the (masked) request id
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)


@pytest.mark.parametrize("field", ["createdAt", "updatedAt"])
async def test_a_timestamp_that_echoes_the_token_is_refused_without_it(
    arena: Arena, field: str
) -> None:
    """A 2xx whose timestamp is the Authorization header: an unreadable answer whose
    message (and chain) does not quote the value."""

    async def answer(request: web.Request) -> web.StreamResponse:
        message = {**MESSAGE["message"], field: request.headers["Authorization"]}
        if request.method == "POST":
            return web.json_response({"ok": True, "message": message}, status=201)
        return web.json_response({"messages": [message], "nextCursor": None})

    arena.hostile.handler = answer
    async with arena.client() as client:
        read = await caught(client.read_messages("conv_1"), UnexpectedResponseError)
        sent = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    assert "ISO-8601 timestamp" in str(read)
    for error in (read, sent):
        assert list(find_secrets(error)) == [], error


async def _no_wait(seconds: float) -> None:
    return None


# -- the CLI prints what others wrote: never as terminal controls, never a traceback ---

HOSTILE_TEXT = "hi \x1b]0;PWNED\x07 \x1b[2J\x9b31m there"
"""An OSC title change with BEL, a clear-screen CSI and a C1 CSI: text for a terminal."""


def _hostile_read_server(arena: Arena, content: str) -> None:
    message = {
        **MESSAGE["message"],
        "isFromViewer": False,
        "senderUserId": "u\x1b[31m",
        "content": content,
    }
    conversation = {
        "id": "conv\x1b[2J",
        "bucket": "job",
        "unreadCount": 1,
        "updatedAt": "2026-01-01T00:00:00Z",
        "lastMessage": message,
    }

    async def answer(request: web.Request) -> web.StreamResponse:
        # json.dumps writes a lone surrogate as the escape a JavaScript server writes.
        if request.method == "POST":  # ours, as sent: the server's text rides in the id
            body: Any = await echoed(request)
            body["message"].update(id="msg " + content, senderUserId=message["senderUserId"])
        elif "conversationId" in request.query:
            body = {"messages": [message], "nextCursor": None}
        else:
            body = {"conversations": [conversation], "nextCursor": None}
        status = 201 if request.method == "POST" else 200
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    arena.hostile.handler = answer


def _env(arena: Arena, tmp_path: Path, *, stdlib_json: bool = False) -> dict[str, str]:
    env = cli_env(None, tmp_path, OT_API_TOKEN=TOKEN, OT_API_BASE_URL=arena.hostile.url)
    if stdlib_json:  # as installed without the [speed] extra: the stdlib json loader
        shadow = tmp_path / "no_orjson"
        shadow.mkdir(exist_ok=True)
        (shadow / "orjson.py").write_text("raise ImportError('not installed')\n")
        env["PYTHONPATH"] = f"{shadow}{os.pathsep}{env['PYTHONPATH']}"
    return env


COMMANDS = [
    ("send", "conv_1", "hello"),
    ("send", "conv_1", "hello", "--json"),
    ("messages", "conv_1"),
    ("messages", "conv_1", "--json"),
    ("conversations",),
    ("conversations", "--json"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
async def test_the_cli_never_prints_terminal_controls_it_read(
    arena: Arena, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Content, ids and names from the server reach the terminal escaped (``\\x1b``)."""
    _hostile_read_server(arena, HOSTILE_TEXT)
    result = await run_cli(*args, env=_env(arena, tmp_path))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    for control in ("\x1b", "\x07", "\x9b"):
        assert control not in result.out + result.err
    assert "PWNED" in result.out  # shown, as text


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
async def test_a_lone_surrogate_from_the_server_is_printed_escaped(
    arena: Arena, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """JSON "\\ud800" (what JavaScript writes for a lone surrogate) with the stdlib
    loader: printed as \\ud800, not a UnicodeEncodeError traceback."""
    _hostile_read_server(arena, "bad \ud800 text")
    result = await run_cli(*args, env=_env(arena, tmp_path, stdlib_json=True))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    assert "\\ud800" in result.out


@pytest.mark.parametrize("args", [("send", "conv_1", "hello"), ("messages", "conv_1")])
async def test_a_server_error_is_one_line_without_the_token(
    arena: Arena, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """An error text with a newline, escape sequences and the echoed Authorization header
    is one line on stderr, escaped, with the token masked."""

    async def answer(request: web.Request) -> web.StreamResponse:
        text = f"nope {request.headers['Authorization']}\nopentrain-async: error: forged\x1b[2K"
        return web.json_response({"error": text, "code": "BAD"}, status=409)

    arena.hostile.handler = answer
    result = await run_cli(*args, env=_env(arena, tmp_path))
    assert result.code == 1
    assert_one_line_error(result)
    assert "\x1b" not in result.err
    assert TOKEN not in result.out + result.err
    assert "Bearer ***" in result.err


# -- job files that are not regular files -------------------------------------------------


async def test_a_job_read_from_a_pipe_loses_no_input(server: FakeOpenTrain, tmp_path: Path) -> None:
    """``cmd | opentrain-async bulk /dev/stdin`` (or ``bulk <(cmd)``): a pipe can be read
    once only; all 500 inputs are sent (the first pass used to eat the first ~8 KiB, and
    the send pass got the rest: 424 inputs, one of them a torn line)."""
    conv = server.add_conversation()
    lines = [
        json.dumps({"conversationId": conv, "content": f"message {i:05d} " + "x" * 40})
        for i in range(500)
    ]
    result = await run_cli(
        "bulk", "/dev/stdin", env=cli_env(server, tmp_path), stdin="\n".join(lines) + "\n"
    )
    assert result.code == 0, result.err
    assert len(server.messages(conv)) == 500
    assert server.stats()["duplicates"] == 0


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
async def test_a_device_as_job_file_is_one_line_exit_2(
    server: FakeOpenTrain, tmp_path: Path, extra: list[str]
) -> None:
    """``bulk /dev/zero`` is refused at once (it used to read until MemoryError)."""
    result = await run_cli("bulk", "/dev/zero", *extra, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert_one_line_error(result)
    assert "/dev/zero: not a regular file" in result.err
    assert server.sends == []


async def test_a_concurrency_typo_is_a_usage_error(server: FakeOpenTrain, tmp_path: Path) -> None:
    """``--concurrency 3000000`` (zeros too many) is exit 2 at once; it used to start three
    million workers for a one-line job and run out of memory before sending."""
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": server.add_conversation(), "content": "x"}))
    result = await run_cli(
        "bulk", str(job), "--concurrency", "3000000", env=cli_env(server, tmp_path), timeout=30
    )
    assert result.code == 2
    assert "at most 1,000" in result.err
    assert "Traceback" not in result.err
    assert server.sends == []


# -- configuration a careless user writes --------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://[::1",  # an unclosed IPv6 bracket: was a raw ValueError from urlsplit
        "https://app.opentrain.ai?",  # an empty query: the API path went into the query
        "https://app.opentrain.ai#",  # an empty fragment: every request went to /
        "https://app.opentrain.ai:0",  # port 0: fails on every request
    ],
)
def test_a_base_url_that_cannot_work_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base URL"):
        OpenTrainClient("tok_abc", url, env={})


async def test_an_unclosed_ipv6_base_url_is_one_line_in_the_cli(tmp_path: Path) -> None:
    env = cli_env(None, tmp_path, OT_API_TOKEN="tok_abc", OT_API_BASE_URL="https://[::1")
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert_one_line_error(result)


def _cli_file(tmp_path: Path) -> Path:
    path = tmp_path / "opentrain" / "cli.json"
    path.parent.mkdir(parents=True)
    return path


def test_a_cli_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Saved by Notepad as "UTF-8 with BOM": read, not "not valid JSON"."""
    path = _cli_file(tmp_path)
    path.write_bytes(b'\xef\xbb\xbf{"apiToken": "tok_from_file"}')
    path.chmod(0o600)
    assert resolve_settings(env={}, config_path=path).token == "tok_from_file"


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_cli_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    """A FIFO used to hang every client construction; /dev/zero read until MemoryError."""
    path = _cli_file(tmp_path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        resolve_settings(env={}, config_path=path)


# -- argument errors are OpenTrainErrors too ------------------------------------------------


@pytest.mark.parametrize("rate", [0, -5, float("nan")])
def test_a_rate_limit_that_is_not_positive_is_a_configuration_error(rate: float) -> None:
    """Was the pacer's raw ValueError (not an OpenTrainError)."""
    with pytest.raises(ConfigurationError, match="rate_limit"):
        OpenTrainClient("tok_abc", env={}, rate_limit=rate)


async def test_a_bulk_concurrency_below_one_is_a_configuration_error(arena: Arena) -> None:
    """send_many/send_all(concurrency=0) raised a raw ValueError; nothing is sent."""
    async with arena.client() as client:
        with pytest.raises(ConfigurationError, match="concurrency"):
            client.send_many([("conv_1", "hi")], concurrency=0)
        with pytest.raises(ConfigurationError, match="concurrency"):
            await client.send_all([("conv_1", "hi")], concurrency=-1)
    assert arena.hostile.requests == []


@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
async def test_a_csv_header_naming_a_column_twice_is_refused(
    server: FakeOpenTrain, tmp_path: Path, extra: list[str]
) -> None:
    """``conversationId,content,content``: which text was meant? (The last column used
    to be sent silently.)"""
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(f"conversationId,content,content\n{conv},draft,final\n")
    result = await run_cli("bulk", str(job), *extra, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert_one_line_error(result)
    assert "content more than once" in result.err
    assert server.sends == []


# -- webhooks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [float("nan"), "1700000000", None])
def test_a_now_that_is_not_a_time_is_refused(now: Any) -> None:
    """``now=NaN`` (or a clock returning NaN) let a signature from 1970 pass as fresh, as a
    NaN tolerance did; a string was a raw TypeError.  ``None`` means the real clock."""
    body = b'{"id": "evt_1", "type": "x", "createdAt": "2026-01-01T00:00:00Z", "data": {}}'
    header = sign_webhook_payload("whsec_test", body, timestamp=1)
    if now is None:
        with pytest.raises(WebhookVerificationError, match="stale"):
            verify_webhook_signature("whsec_test", body, header)
        return
    with pytest.raises(ConfigurationError, match="now must be"):
        verify_webhook_signature("whsec_test", body, header, now=now)


@pytest.mark.parametrize("verbose", [[], ["-v"]])
async def test_bulk_logs_quote_the_server_without_terminal_controls(
    arena: Arena, tmp_path: Path, verbose: list[str]
) -> None:
    """What the server answered to the pre-send check reaches stderr with its escape
    sequences escaped (the run stops there, exit 3, nothing sent)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"error": "closed \x1b]0;PWNED\x07\x1b[2J", "code": "CONFLICT"}
        return web.json_response(body, status=409)

    arena.hostile.handler = answer
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": "conv_1", "content": "hi"}) + "\n")
    result = await run_cli("bulk", str(job), *verbose, env=_env(arena, tmp_path))
    assert result.code == 3
    assert "Traceback" not in result.err
    assert "\\x1b]0;PWNED" in result.err  # the warning about the token check, escaped
    assert "\x1b" not in result.err


@pytest.mark.parametrize("as_json", [False, True])
async def test_a_failure_reason_in_rich_markup_does_not_break_the_summary(
    arena: Arena, tmp_path: Path, as_json: bool
) -> None:
    """A 409 whose details.reason reads "[/bold]" is shown as text in the summary table;
    it was parsed as rich markup and the run ended in a MarkupError traceback (after
    sending, so the --json summary was lost too)."""

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/auth/me"):  # the CLI's pre-send check passes
            return web.json_response(
                {
                    "actor": {"userId": "u1", "userType": "employer"},
                    "token": {"id": "t1", "label": "ci", "scopes": ["messages:write"]},
                    "account": {"kind": "organization", "organizationId": "o1"},
                }
            )
        if request.path.endswith("/capabilities"):
            return web.json_response({"capabilities": {"messagingWrites": True}})
        if request.method == "GET":
            return web.json_response({"conversations": [], "nextCursor": None})
        body = {"error": "no", "code": "CONFLICT", "details": {"reason": "[/bold] [link=x]y"}}
        return web.json_response(body, status=409)

    arena.hostile.handler = answer
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": "conv_1", "content": "hi"}) + "\n")
    args = ["--json"] if as_json else []
    result = await run_cli("bulk", str(job), *args, env=_env(arena, tmp_path))
    assert result.code == 1
    assert "Traceback" not in result.err
    assert "[/bold] [link=x]y" in (result.err if as_json else result.out)
    if as_json:
        assert result.json()["failedByReason"] == {"[/bold] [link=x]y": 1}


# -- answers aiohttp cannot parse, quoting the request back ------------------------------

_AUTH = f"Bearer {TOKEN}".encode()
GARBLED = {
    "status line": b"HTTP/1.1 abc " + _AUTH + b"\r\n\r\n",
    "status line, token cut short": b"HTTP/1.1 abc " + _AUTH[:20] + b"\r\n\r\n",
    "header with NUL": b"HTTP/1.1 200 OK\r\nX-Echo: " + _AUTH + b"\x00\r\n\r\n",
    "header over 8 KiB": b"HTTP/1.1 200 OK\r\nX-Echo: " + _AUTH + b"a" * 9000 + b"\r\n\r\n",
    "chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _AUTH + b"\r\n",
    "Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: " + _AUTH + b"\r\n\r\n",
}


@pytest.mark.parametrize("garbled", list(GARBLED))
async def test_an_unparsable_answer_quoting_the_token_is_not_quoted_back(
    arena: Arena, garbled: str
) -> None:
    """aiohttp's parser errors quote the bytes it choked on; a server echoing the request
    there put the token (or its first characters) into APIConnectionError's message."""
    arena.raw_answers += [GARBLED[garbled]] * 2
    async with OpenTrainClient(TOKEN, arena.raw_url, env={}, max_retries=0) as client:
        read = await caught(client.whoami(), APIConnectionError)
        sent = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    for error in (read, sent):
        assert list(find_secrets(error)) == [], error
        assert TOKEN[:12] not in str(error)
    assert "connection failed: ClientResponseError" in str(read)  # what failed is still said


# -- a listen() cursor file someone edited -------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"cursor": "caf\xe9"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["latin-1", "nested 100,000 deep"],
)
async def test_a_damaged_cursor_file_is_a_configuration_error(
    tmp_path: Path, content: bytes
) -> None:
    """Was a raw UnicodeDecodeError / RecursionError out of listen()'s first load."""
    path = tmp_path / "cursor.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="cursor file"):
        await JSONFileCursorStore(path).load()


async def test_a_journal_line_nested_thousands_deep_is_one_line_exit_2(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """An edited (or foreign) journal whose line is JSON nested 50,000 deep: refused in
    one line, nothing sent (was a RecursionError traceback)."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(json.dumps({"conversationId": conv, "content": "hi"}) + "\n")
    journal = tmp_path / "job.journal"
    journal.write_bytes(b"[" * 50_000 + b"]" * 50_000 + b"\n")
    result = await run_cli(
        "bulk", str(job), "--journal", str(journal), env=cli_env(server, tmp_path)
    )
    assert result.code == 2
    assert_one_line_error(result)
    assert server.sends == []
