"""``conversations`` and ``messages`` never print the token, whatever the server says.

A message's content is the server's to say: a hostile server (or a proxy's debug page
turned into a message) echoes the Authorization header into it, or a colleague pastes
the token into a chat.  The CLI printed it as is, plain and ``--json``; the README
promises the token never appears in the CLI's output.  It is now ``***`` there (the
SDK still returns the server's data unchanged).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli


@pytest.mark.parametrize(
    "args",
    [["messages", "{conv}"], ["messages", "{conv}", "--json"], ["conversations"],
     ["conversations", "--json"]],
    ids=["messages", "messages-json", "conversations", "conversations-json"],
)  # fmt: skip
async def test_a_message_holding_the_token_is_printed_without_it(
    args: list[str], server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    server.add_incoming_message(conv, f"here is the token: {server.token}")
    server.add_incoming_message(conv, f'as JSON would quote it: "Bearer {server.token}"')
    result = await run_cli(*(a.format(conv=conv) for a in args), env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert server.token not in result.out + result.err
    assert "***" in result.out
    assert "as JSON would quote it" in result.out
