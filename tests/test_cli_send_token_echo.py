"""``send`` printed the message it sent, token included when the text held it (pasted
by mistake), plain and ``--json``, while ``messages`` printed the same message with
``***``: the README promises the token never appears in the CLI's output, and the CLI
prints the token in a message's content as ``***``.  (Failed on main.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["plain", "json"])
@pytest.mark.parametrize("pad", [0, 180], ids=["short", "at-the-cut"])
async def test_send_never_prints_the_token_it_sent(
    extra: list[str], pad: int, server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    text = "x" * pad + f"oops: {server.token} end"
    result = await run_cli("send", conv, text, *extra, env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert server.token[:12] not in result.out + result.err
    assert "***" in result.out
    assert [m["content"] for m in server.messages(conv)] == [text]  # sent as written
