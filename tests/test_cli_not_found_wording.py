"""A 404 from ``send`` or ``messages`` says which of two mistakes it was: a mistyped
conversation id, or a base URL with a path (which ``bulk``'s pre-send check explains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli


@pytest.mark.parametrize("command", [("send", "conv_typo", "hi"), ("messages", "conv_typo")])
async def test_a_mistyped_conversation_is_named_with_a_hint(
    server: FakeOpenTrain, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Exit 1, one line naming the id and pointing to ``conversations``."""
    server.add_conversation()
    result = await run_cli(*command, env=cli_env(server, tmp_path))
    assert result.code == 1, result.err
    assert_one_line_error(result)
    assert "conversation 'conv_typo' not found (404)" in result.err
    assert "opentrain-async conversations` lists yours" in result.err


@pytest.mark.parametrize("command", [("send", "conv_0001", "hi"), ("messages", "conv_0001")])
async def test_a_base_url_with_a_path_is_explained(
    server: FakeOpenTrain, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Exit 3 (could not start), one line saying the base URL is not the API and what an
    origin looks like, as ``bulk`` says; never a raw 404."""
    server.add_conversation("conv_0001")
    env = cli_env(server, tmp_path, OT_API_BASE_URL=server.base_url + "/opentrain")
    result = await run_cli(*command, env=env)
    assert result.code == 3, result.err
    assert_one_line_error(result)
    assert "does not answer like the OpenTrain public API" in result.err
    assert "without a path" in result.err
    assert server.stats()["committed"] == 0
