"""``messages --follow --max N`` runs "until --max messages were shown" (docs/cli.md):
it went on polling after the N-th and ended only when an (N+1)-th message arrived,
unshown, so ``--follow --max 1`` on a quiet conversation never returned.  Now it ends
as the N-th is printed.  (Failed on main: still polling after 3 s.)
"""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli


async def test_follow_ends_once_max_messages_were_shown(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    server.add_incoming_message(conv, "one")
    server.add_incoming_message(conv, "two")
    args = ("messages", conv, "--follow", "--interval", "0.05", "--max", "2")
    result = await run_cli(*args, env=cli_env(server, tmp_path), timeout=3)
    assert result.code == 0, result.err
    assert [line.rsplit(": ", 1)[1] for line in result.out.splitlines()] == ["one", "two"]
