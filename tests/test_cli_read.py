"""opentrain-async conversations / messages [--follow], as a subprocess against the fake server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, start_cli


async def test_conversations_lists_with_unread_and_last_message(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """conversations prints one line per conversation; --unread keeps those with unread."""
    quiet = server.add_conversation()
    busy = server.add_conversation()
    server.add_incoming_message(busy, "Can I start batch 8?")
    result = await run_cli("conversations", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(busy)  # most recently updated first
    assert "unread 1" in lines[0]
    assert "Can I start batch 8?" in lines[0]
    unread = await run_cli("conversations", "--unread", "--json", env=cli_env(server, tmp_path))
    [record] = [json.loads(line) for line in unread.out.splitlines()]
    assert record["id"] == busy
    assert record["unreadCount"] == 1
    assert quiet not in unread.out


async def test_messages_prints_newest_first_up_to_max(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """messages CONV pages back from the newest, each once; --max N shows the latest N."""
    conv = server.add_conversation()
    for i in range(5):
        server.add_incoming_message(conv, f"note {i}")
    result = await run_cli("messages", conv, "--limit", "2", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert [line.rsplit(": ", 1)[1] for line in result.out.splitlines()] == [
        "note 3",
        "note 4",
        "note 1",
        "note 2",
        "note 0",
    ]  # each page is printed oldest first; pages go back in time
    capped = await run_cli("messages", conv, "--max", "2", "--json", env=cli_env(server, tmp_path))
    assert [json.loads(line)["content"] for line in capped.out.splitlines()] == [
        "note 3",
        "note 4",
    ]


@pytest.mark.process
async def test_messages_follow_prints_new_messages_as_they_arrive(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """messages --follow shows the latest page, then each new message once, until stopped."""
    conv = server.add_conversation()
    server.add_incoming_message(conv, "before")
    env = cli_env(server, tmp_path)
    proc = await start_cli("messages", conv, "--follow", "--interval", "0.05", env=env)
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.decode().rstrip().endswith(": before")
        server.add_incoming_message(conv, "after")
        second = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert second.decode().rstrip().endswith(": after")
    finally:
        proc.terminate()
        await proc.wait()


async def test_messages_for_unknown_conversation_is_one_line_exit_1(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A 404 is one clear line on stderr and exit code 1."""
    result = await run_cli("messages", "conv_missing", env=cli_env(server, tmp_path))
    assert result.code == 1
    assert_one_line_error(result)


async def test_read_commands_with_a_rejected_token_exit_3(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A rejected token cannot start: exit 3, one line, and the token is not printed."""
    env = cli_env(server, tmp_path, OT_API_TOKEN="ot_pat_rejected_123")
    result = await run_cli("conversations", env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "ot_pat_rejected_123" not in result.err
