"""``messages`` and ``conversations`` cut long content to fit a line (200 and 60
characters), and masked the token only after the cut: a token straddling the cut was
printed without its last characters, not as ``***``.  The README promises the CLI prints
the token in a message's content as ``***``; a prefix of it is most of the secret.
(Failed on main: the printed line held the token minus its last character.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli


@pytest.mark.parametrize(
    ("args", "width"), [(["messages", "{conv}"], 200), (["conversations"], 60)]
)
async def test_a_token_cut_by_the_line_width_is_not_printed_in_part(
    args: list[str], width: int, server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    token = server.token
    # The token ends one character past the cut: all but its last character would show.
    server.add_incoming_message(conv, "x" * (width - len(token)) + token + " and more")
    result = await run_cli(*(a.format(conv=conv) for a in args), env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert token[: len(token) // 2] not in result.out + result.err, result.out
