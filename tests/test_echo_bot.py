"""The README's echo bot, run as written (a subprocess) against the fake server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .test_bot_answers_once import ECHO_BOT, echo_bot_env


async def _run_echo_bot(server: FakeOpenTrain, cursor_file: Path) -> str:
    """Run the echo bot until it has handled two messages; its stderr (exit 0 asserted)."""
    env = echo_bot_env(server, cursor_file)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ECHO_BOT),
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


async def run_echo_bot_here(
    server: FakeOpenTrain, cursor_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's echo bot file, its ``main(2)`` run in this process and loop (for
    what its loop does with a message; the subprocess runs above are for the file as a
    program)."""
    for name in ("OT_API_TOKEN", "OT_API_BASE_URL", "OT_CURSOR_FILE"):
        monkeypatch.setenv(name, echo_bot_env(server, cursor_file)[name])
    spec = importlib.util.spec_from_file_location("echo_bot_under_test", ECHO_BOT)
    assert spec is not None
    assert spec.loader is not None
    bot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bot)
    assert await bot.main(2) == 2


@pytest.mark.process
async def test_echo_bot_answers_new_messages(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    """The echo bot replies to messages newer than its saved cursor, then stops after N."""
    cid = server.add_conversation()
    server.add_incoming_message(cid, "old news")
    head = (await client.get_updates()).next_cursor
    assert head is not None
    cursor_file = tmp_path / "cursor.json"
    cursor_file.write_text(json.dumps({"cursor": head}))  # as a previous run left it
    server.add_incoming_message(cid, "hello bot")
    server.add_incoming_message(server.add_conversation(), "second thread")
    await _run_echo_bot(server, cursor_file)
    replies = sorted(r.json["content"] for r in server.sends)
    assert replies == ["echo: hello bot", "echo: second thread"]


def test_readme_shows_the_echo_bot_that_is_tested() -> None:
    """The echo bot in the README is, byte for byte, the file this module runs."""
    readme = (ECHO_BOT.parent.parent / "README.md").read_text(encoding="utf-8")
    source = ECHO_BOT.read_text(encoding="utf-8")
    assert f"```python\n{source}```" in readme


@pytest.mark.process
async def test_echo_bot_skips_a_conversation_that_refuses_replies(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A message in a read-only conversation: the bot says it did not answer and goes on
    to the next one.  Raised out of its loop (as the README's bot did), it stopped the
    bot, and every restart met the same message again: the bot never answered anyone."""
    closed = server.add_conversation(send_block="read_only_conversation")
    server.add_incoming_message(closed, "too late")
    server.add_incoming_message(server.add_conversation(), "hello bot")
    cursor_file = tmp_path / "cursor.json"
    cursor_file.write_text(json.dumps({"cursor": "0"}))  # from the start
    stderr = await _run_echo_bot(server, cursor_file)
    assert f"not answered in {closed}" in stderr
    assert [r.json["content"] for r in server.sends if r.status == 201] == ["echo: hello bot"]


async def test_echo_bot_goes_on_past_a_message_too_long_to_echo(
    server: FakeOpenTrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side may send 10,000 characters; echoed with a prefix, that is over
    the limit.  On a60ec89 the bot exited with InvalidRequestError and never answered
    the next message, on this run or any restart (the README's bot now skips it)."""
    server.add_incoming_message(server.add_conversation(), "x" * 10_000)
    server.add_incoming_message(server.add_conversation(), "hello bot")
    cursor_file = tmp_path / "cursor.json"
    cursor_file.write_text(json.dumps({"cursor": "0"}))  # from the start
    await run_echo_bot_here(server, cursor_file, monkeypatch)
    assert [r.json["content"] for r in server.sends if r.status == 201] == ["echo: hello bot"]
