"""Proxies from the environment: a malformed proxy variable is a ConfigurationError (one
line in the CLI), ignored with trust_env=False."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import (
    ConfigurationError,
    OpenTrainClient,
)

from .cli_helpers import assert_one_line_error, cli_env, run_cli

# -- proxies from the environment ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "http://user:s3cret@proxy:notaport",
        "http://user:s3cret@proxy:99999",
        "http://[::1",
        "http://user:s3cret@:80",
    ],
)
def test_a_malformed_proxy_variable_is_a_configuration_error(value: str) -> None:
    """A typo in HTTPS_PROXY fails at construction as ConfigurationError naming the
    variable (as httpx refuses it), never as yarl's ValueError, and never echoes the
    proxy's password."""
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY") as info:
        OpenTrainClient("ot_pat_x", "https://api.example.com", env={"HTTPS_PROXY": value})
    assert "s3cret" not in str(info.value)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_a_malformed_proxy_variable_is_ignored_with_trust_env_false() -> None:
    client = OpenTrainClient(
        "ot_pat_x", "https://api.example.com", env={"HTTPS_PROXY": "http://p:x"}, trust_env=False
    )
    assert client.api_root == "https://api.example.com/api/public/v1"


async def test_the_cli_with_a_malformed_proxy_says_one_line(tmp_path: Path) -> None:
    """``opentrain-async send`` under a broken HTTPS_PROXY: exit 3, one line, no traceback,
    no password."""
    env = cli_env(
        None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL="https://api.example.com"
    )
    env["HTTPS_PROXY"] = "http://user:s3cret@proxy:notaport"
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert "s3cret" not in result.err
    assert "HTTPS_PROXY" in result.err
    assert_one_line_error(result)
