"""The CLI prints what others wrote (message text, server errors, failure reasons): never as
terminal controls or markup, never a traceback, never the token."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from opentrain_async import _json

from .cli_helpers import assert_one_line_error, cli_env, run_cli
from .test_hostile import MESSAGE, TOKEN, Arena, arena, echoed

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


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


def _env(arena: Arena, tmp_path: Path) -> dict[str, str]:
    return cli_env(None, tmp_path, OT_API_TOKEN=TOKEN, OT_API_BASE_URL=arena.hostile.url)


def _without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """As installed without the [speed] extra: every module that took orjson's loader
    (or dumper) gets the stdlib one ``opentrain_async._json`` falls back to."""
    chosen = {_json.json_loads: _json._std_loads, _json.json_dumps: _json._std_dumps}
    for name, module in list(sys.modules.items()):
        if name == "opentrain_async" or name.startswith("opentrain_async."):
            for attr in ("json_loads", "json_dumps"):
                value = getattr(module, attr, None)
                if value in chosen:
                    monkeypatch.setattr(module, attr, chosen[value])


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
    arena: Arena, tmp_path: Path, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON "\\ud800" (what JavaScript writes for a lone surrogate) with the stdlib
    loader: printed as \\ud800, not a UnicodeEncodeError traceback."""
    _hostile_read_server(arena, "bad \ud800 text")
    _without_orjson(monkeypatch)
    result = await run_cli(*args, env=_env(arena, tmp_path))
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
