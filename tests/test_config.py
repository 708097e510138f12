"""Token and base-URL resolution, in the official CLI's order, and the http refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient, resolve_settings
from opentrain_async._config import config_file_path


def write_cli_file(path: Path, **data: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def cli_file(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "opentrain" / "cli.json"


def test_argument_beats_env_and_file(cli_file: Path) -> None:
    """An explicit token wins over both env vars and the CLI file."""
    write_cli_file(cli_file, apiToken="ot_pat_file")
    env = {"OT_API_TOKEN": "ot_pat_env1", "OPENTRAIN_API_TOKEN": "ot_pat_env2"}
    settings = resolve_settings("ot_pat_arg", env=env, config_path=cli_file)
    assert settings.token == "ot_pat_arg"


def test_ot_env_beats_opentrain_env(cli_file: Path) -> None:
    """OT_API_TOKEN is consulted before OPENTRAIN_API_TOKEN."""
    env = {"OT_API_TOKEN": "ot_pat_env1", "OPENTRAIN_API_TOKEN": "ot_pat_env2"}
    assert resolve_settings(env=env, config_path=cli_file).token == "ot_pat_env1"
    env = {"OPENTRAIN_API_TOKEN": "ot_pat_env2"}
    assert resolve_settings(env=env, config_path=cli_file).token == "ot_pat_env2"


def test_cli_file_is_last_resort_and_found_via_xdg(tmp_path: Path) -> None:
    """Without argument or env, token and base URL come from $XDG_CONFIG_HOME/opentrain/cli.json."""
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    path = config_file_path(env)
    assert path == tmp_path / "opentrain" / "cli.json"
    write_cli_file(path, apiToken="ot_pat_file", baseUrl="https://staging.example.com")
    settings = resolve_settings(env=env)
    assert settings.token == "ot_pat_file"
    assert settings.api_root == "https://staging.example.com/api/public/v1"


def test_default_config_path_is_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without XDG_CONFIG_HOME the file is ~/.config/opentrain/cli.json."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_file_path({}) == tmp_path / ".config" / "opentrain" / "cli.json"


def test_missing_token_names_all_three_places(cli_file: Path) -> None:
    """No token anywhere is a ConfigurationError naming both env vars and the file."""
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env={}, config_path=cli_file)
    text = str(info.value)
    assert "OT_API_TOKEN" in text
    assert "OPENTRAIN_API_TOKEN" in text
    assert str(cli_file) in text
    assert isinstance(info.value, ValueError)


def test_unreadable_or_invalid_cli_file_is_a_clear_error(cli_file: Path) -> None:
    """A CLI file that is not JSON gives a ConfigurationError naming the file."""
    cli_file.parent.mkdir(parents=True)
    cli_file.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        resolve_settings(env={}, config_path=cli_file)


def test_non_object_cli_file_is_ignored(cli_file: Path) -> None:
    """A CLI file holding a JSON list yields no token rather than a crash."""
    cli_file.parent.mkdir(parents=True)
    cli_file.write_text("[]")
    with pytest.raises(ConfigurationError, match="no OpenTrain API token"):
        resolve_settings(env={}, config_path=cli_file)


@pytest.mark.parametrize("key", ["apiToken", "baseUrl"])
def test_a_cli_file_value_of_the_wrong_type_is_named_not_skipped(cli_file: Path, key: str) -> None:
    """``"apiToken": 12345678`` (a number): the error names the key and the file, not
    "no token found" (the user sees one there), and never echoes the value."""
    cli_file.parent.mkdir(parents=True)
    cli_file.write_text(json.dumps({"apiToken": "ot_pat_file", key: 987654321}))
    with pytest.raises(ConfigurationError) as info:
        resolve_settings(env={}, config_path=cli_file)
    text = str(info.value)
    assert f'"{key}" in {cli_file} must be a string, got int' in text
    assert "987654321" not in text


def test_base_url_order(cli_file: Path) -> None:
    """Base URL: argument, OT_API_BASE_URL, OPENTRAIN_API_BASE_URL, file, default."""
    write_cli_file(cli_file, apiToken="t", baseUrl="https://file.example")
    env = {
        "OT_API_BASE_URL": "https://ot.example",
        "OPENTRAIN_API_BASE_URL": "https://opentrain.example",
    }
    root = lambda **kw: resolve_settings(config_path=cli_file, **kw).api_root  # noqa: E731
    assert root(base_url="https://arg.example", env=env) == "https://arg.example/api/public/v1"
    assert root(env=env) == "https://ot.example/api/public/v1"
    assert root(env={"OPENTRAIN_API_BASE_URL": "https://opentrain.example"}) == (
        "https://opentrain.example/api/public/v1"
    )
    assert root(env={}) == "https://file.example/api/public/v1"
    cli_file.write_text(json.dumps({"apiToken": "t"}))
    assert root(env={}) == "https://app.opentrain.ai/api/public/v1"


@pytest.mark.parametrize(
    "base_url",
    [
        "https://app.opentrain.ai",
        "https://app.opentrain.ai/",
        "https://app.opentrain.ai/api/public/v1",
    ],
)
def test_api_prefix_is_appended_once(base_url: str, cli_file: Path) -> None:
    """The /api/public/v1 prefix is appended to an origin and never doubled."""
    settings = resolve_settings("t", base_url, env={}, config_path=cli_file)
    assert settings.api_root == "https://app.opentrain.ai/api/public/v1"


@pytest.mark.parametrize(
    "base_url",
    ["http://app.opentrain.ai", "http://10.0.0.5:8080", "http://example.com/api/public/v1"],
)
def test_plain_http_to_remote_hosts_is_refused(base_url: str, cli_file: Path) -> None:
    """Plain http:// to a non-loopback host raises ValueError at construction."""
    with pytest.raises(ValueError, match="clear text"):
        OpenTrainClient("ot_pat_x", base_url, env={}, config_path=cli_file)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8000", "http://127.9.9.9", "http://localhost:1234", "http://[::1]:8080"],
)
def test_plain_http_to_loopback_is_allowed(base_url: str, cli_file: Path) -> None:
    """Loopback hosts (127.0.0.0/8, ::1, localhost) may use plain http."""
    client = OpenTrainClient("ot_pat_x", base_url, env={}, config_path=cli_file)
    assert client.api_root.startswith(base_url)


@pytest.mark.parametrize("base_url", ["ftp://example.com", "app.opentrain.ai", "https://x.io/?a=1"])
def test_malformed_base_url_is_refused(base_url: str, cli_file: Path) -> None:
    """A base URL that is not an http(s) origin is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        resolve_settings("t", base_url, env={}, config_path=cli_file)


def test_client_options_are_checked(cli_file: Path) -> None:
    """Nonsensical concurrency or timeout values are refused up front."""
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenTrainClient("ot_pat_opt", env={}, config_path=cli_file, max_concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        OpenTrainClient("ot_pat_opt", env={}, config_path=cli_file, timeout=0)
