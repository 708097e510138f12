"""adv9: the README's echo bot (b480a1c skips an invalid echo) against a conversation
that is gone by the time it answers (deleted server-side: the API's 404 "Conversation
not found")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .test_echo_bot import run_echo_bot_here


async def test_echo_bot_goes_on_past_a_conversation_that_is_gone(
    server: FakeOpenTrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """listen() already skips a conversation gone before it reads it (404, logged); one
    gone between that read and the answer (here: the first answer's POST is the 404)
    raised NotFoundError out of the bot's loop on 9bcd1d0: exit 1, every later message
    unanswered until someone restarts it (listen() then skips the gone conversation)."""
    server.add_incoming_message(server.add_conversation(), "bye")
    server.add_incoming_message(server.add_conversation(), "hello bot")
    server.script("POST /messages", status=404, error="Conversation not found")
    cursor_file = tmp_path / "cursor.json"
    cursor_file.write_text(json.dumps({"cursor": "0"}))  # from the start
    await run_echo_bot_here(server, cursor_file, monkeypatch)  # 9bcd1d0: NotFoundError
    assert [r.json["content"] for r in server.sends if r.status == 201] == ["echo: hello bot"]
