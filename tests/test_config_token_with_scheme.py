"""A token pasted with its scheme (``Bearer ot_pat_...``, from a curl line or the API
docs) fails every request: the header goes out as ``Bearer Bearer ot_pat_...`` and
the server answers 401 "invalid token", which does not say why.  Like every setting
that would fail on every request, it is refused at construction as a
``ConfigurationError`` that says what to do, and never shows the token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli

SECRET = "ot_pat_scheme_S3CRET"


@pytest.mark.parametrize("token", [f"Bearer {SECRET}", f"bearer  {SECRET}", f" BEARER {SECRET}"])
def test_a_token_with_its_scheme_is_refused_at_construction(token: str) -> None:
    with pytest.raises(ConfigurationError, match="starts with 'Bearer '") as info:
        OpenTrainClient(token, "https://app.opentrain.ai", env={})
    assert SECRET not in str(info.value)


def test_from_the_environment_and_the_cli_file_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"from \$OT_API_TOKEN starts with"):
        OpenTrainClient(env={"OT_API_TOKEN": f"Bearer {SECRET}"})
    config = tmp_path / "opentrain" / "cli.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"apiToken": f"Bearer {SECRET}"}), encoding="utf-8")
    config.chmod(0o600)
    with pytest.raises(ConfigurationError, match="starts with 'Bearer '") as info:
        OpenTrainClient(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("token", ["Bearerot_pat_x", "ot_pat_Bearer x"])
async def test_a_token_merely_containing_the_word_is_kept(token: str) -> None:
    """Accepted, and sent as given: a server that knows only that token takes the send."""
    async with FakeOpenTrain(token=token) as server:
        conv = server.add_conversation()
        async with OpenTrainClient(token, server.base_url, env={}) as client:
            await client.send_message(conv, "hi")
        assert [m["content"] for m in server.messages(conv)] == ["hi"]


async def test_the_cli_says_so_in_one_line_exit_3(server: FakeOpenTrain, tmp_path: Path) -> None:
    env = cli_env(server, tmp_path, OT_API_TOKEN=f"Bearer {server.token}")
    result = await run_cli("send", server.add_conversation(), "hi", env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "starts with 'Bearer '" in result.err
    assert server.token not in result.err + result.out
    assert server.sends == []
