"""Careless or hostile input without a network: settings, hints, JSON, webhooks (issue 10)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import (
    ConfigurationError,
    InvalidRequestError,
    OpenTrainClient,
    RateLimitError,
    RetryPolicy,
    WebhookHandler,
    WebhookVerificationError,
    resolve_settings,
    sign_webhook_payload,
    verify_webhook_signature,
)
from opentrain_async._errors import error_from_response, parse_retry_after
from opentrain_async._json import _std_loads

PASSWORD = "hunter2-S3CRET"


@pytest.fixture
def cli_file(tmp_path: Path) -> Path:
    path = tmp_path / "xdg" / "opentrain" / "cli.json"
    path.parent.mkdir(parents=True)
    return path


def write_private(path: Path, data: dict[str, str]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)
    return path


# -- token and base URL --------------------------------------------------------------------


@pytest.mark.parametrize("blank", ["   ", "\t", "\n"])
def test_a_blank_token_counts_as_none(cli_file: Path, blank: str) -> None:
    """A token of whitespace (argument or environment) never wins over the CLI file."""
    write_private(cli_file, {"apiToken": "ot_pat_file"})
    env = {"OT_API_TOKEN": blank, "OPENTRAIN_API_TOKEN": blank}
    settings = resolve_settings(blank, env=env, config_path=cli_file)
    assert settings.token == "ot_pat_file"
    assert settings.token_source == str(cli_file)


def test_a_blank_token_everywhere_is_no_token(cli_file: Path) -> None:
    """Blank everywhere is the usual 'no token found' error, not an empty Bearer."""
    write_private(cli_file, {"apiToken": "  "})
    with pytest.raises(ConfigurationError, match="no OpenTrain API token found"):
        resolve_settings("  ", env={"OT_API_TOKEN": " "}, config_path=cli_file)


@pytest.mark.parametrize("char", ["\r", "\n", "\0", "\x7f", "\udcff", "é"])
@pytest.mark.parametrize("where", ["argument", "env", "file"])
def test_a_token_that_cannot_be_a_header_is_refused_at_construction(
    cli_file: Path, char: str, where: str
) -> None:
    """CR, LF, NUL, non-ASCII: ConfigurationError naming the source, never the token."""
    token = f"ot_pat_{char}SECRETPART"
    env: dict[str, str] = {}
    argument = None
    if where == "argument":
        argument = token
    elif where == "env":
        env["OT_API_TOKEN"] = token
    else:
        cli_file.write_text(json.dumps({"apiToken": token}), encoding="utf-8")
    with pytest.raises(ConfigurationError) as info:
        OpenTrainClient(argument, "https://api.example", env=env, config_path=cli_file)
    message = str(info.value)
    assert "SECRETPART" not in message
    assert f"U+{ord(char):04X}" in message
    assert {"argument": "argument", "env": "$OT_API_TOKEN", "file": str(cli_file)}[where] in message


@pytest.mark.parametrize(
    "url",
    [
        f"https://user:{PASSWORD}@api.example",
        f"https://:{PASSWORD}@api.example",
        f"https://{PASSWORD}@api.example",
        f"http://me:{PASSWORD}@127.0.0.1:8080/api/public/v1",
    ],
)
def test_a_base_url_with_userinfo_is_refused_without_showing_it(url: str) -> None:
    """user:password@ in the base URL: ConfigurationError that names neither part."""
    with pytest.raises(ConfigurationError, match="must not carry user:password@") as info:
        OpenTrainClient("ot_pat_x", url, env={})
    assert PASSWORD not in str(info.value)
    assert "***@" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example:99999",
        "https://api.example:-1",
        "https://api.example:http",
        "https://api.exa\udcffmple",
        "https://api.example/\npath",
        "https://api .example",
    ],
)
def test_a_base_url_that_would_fail_every_request_is_refused_at_construction(url: str) -> None:
    """A port out of range, an undecodable host, whitespace: ConfigurationError up front."""
    with pytest.raises(ConfigurationError) as info:
        OpenTrainClient("ot_pat_x", url, env={})
    assert "base URL" in str(info.value)


def test_repr_never_shows_the_token(cli_file: Path) -> None:
    """repr(client) names the API root and redacts the token."""
    client = OpenTrainClient("ot_pat_REPRSECRET", "https://api.example", env={})
    assert "REPRSECRET" not in repr(client)
    assert "https://api.example/api/public/v1" in repr(client)


def test_a_cli_file_that_is_not_utf8_is_a_configuration_error(cli_file: Path) -> None:
    """cli.json in Latin-1 is a ConfigurationError at construction, not UnicodeDecodeError."""
    cli_file.write_bytes(b'{"apiToken": "ot_pat_caf\xe9"}')
    with pytest.raises(ConfigurationError, match="not UTF-8"):
        OpenTrainClient(env={}, config_path=cli_file)


def test_a_cli_file_nested_too_deep_is_a_configuration_error(cli_file: Path) -> None:
    """A cli.json nested 100,000 deep is 'not valid JSON', not RecursionError."""
    cli_file.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        OpenTrainClient(env={}, config_path=cli_file)


def test_a_token_file_readable_by_others_is_warned_about_once(
    cli_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Mode 0644 (the official CLI writes 0600): one warning naming the file and the fix."""
    write_private(cli_file, {"apiToken": "ot_pat_file"}).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        for _ in range(3):
            OpenTrainClient(env={}, config_path=cli_file)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(cli_file) in warnings[0]
    assert "0644" in warnings[0]
    assert "chmod 600" in warnings[0]
    assert "ot_pat_file" not in warnings[0]


def test_a_private_token_file_or_an_unused_one_is_not_warned_about(
    cli_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """0600 is fine; and a readable file whose token is not used (env wins) says nothing."""
    write_private(cli_file, {"apiToken": "ot_pat_file"})
    with caplog.at_level(logging.WARNING, logger="opentrain_async"):
        OpenTrainClient(env={}, config_path=cli_file)
        cli_file.chmod(0o644)
        OpenTrainClient(env={"OT_API_TOKEN": "ot_pat_env"}, config_path=cli_file)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_response_bytes", 0),
        ("timeout", math.nan),
        ("timeout", 0),
        ("max_concurrency", 0),
        ("user_agent", "bot/1\r\nX-Evil: 1"),
    ],
)
def test_client_options_that_would_fail_every_request_are_refused(
    option: str, value: object
) -> None:
    """Bad options are a ConfigurationError (a ValueError) naming the option, up front."""
    with pytest.raises(ConfigurationError, match=option):
        OpenTrainClient("ot_pat_x", "https://api.example", env={}, **{option: value})


# -- hints and JSON ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [10**400, "9" * 400, 1e308 * 10, "nan", -1])
def test_an_unusable_retry_hint_is_no_hint(value: object) -> None:
    """Overflowing, infinite, NaN or negative hints read as None (backoff), never raise."""
    assert parse_retry_after(value) is None


@pytest.mark.parametrize("loader", ["stdlib", "orjson"])
def test_a_429_with_an_overflowing_hint_in_json_is_still_a_rate_limit_error(
    monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    """A 400-digit integer hint is ignored (the stdlib keeps the envelope, orjson refuses the
    body); either way a RateLimitError that falls back to Retry-After."""
    if loader == "stdlib":
        monkeypatch.setattr("opentrain_async._errors.json_loads", _std_loads)
    body = b'{"error": "slow", "details": {"retryAfterSeconds": ' + b"9" * 400 + b"}}"
    error = error_from_response(429, body, {"Retry-After": "3"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 3.0
    if loader == "stdlib":
        assert error.message == "slow"


def test_the_stdlib_loader_turns_deep_nesting_into_value_error() -> None:
    """Without orjson, a body nested 100,000 deep is a ValueError like any bad JSON."""
    with pytest.raises(ValueError, match="nested too deeply"):
        _std_loads(b"[" * 100_000 + b"]" * 100_000)
    assert _std_loads(b'{"a": [1]}') == {"a": [1]}


def test_a_nan_retry_cap_is_refused() -> None:
    """max_retry_after=NaN would let every hint through: refused."""
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=math.nan)


# -- webhooks ----------------------------------------------------------------------------

SECRET = "whsec_test"
BODY = b'{"id": "evt_1", "type": "message.received", "createdAt": "2026-01-01T00:00:00Z"}'


@pytest.mark.parametrize("digits", [16, 400, 5000])
def test_a_timestamp_of_many_digits_is_malformed(digits: int) -> None:
    """t= with 16, 400 or 5,000 digits is 'malformed' (no OverflowError, no ValueError)."""
    header = f"t={'9' * digits},v1={'0' * 64}"
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, header)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("tolerance", [math.nan, math.inf, -math.inf, -1.0])
def test_a_tolerance_that_is_not_finite_and_positive_is_refused(tolerance: float) -> None:
    """NaN would accept any timestamp: verify and the handler both refuse it."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=0)
    with pytest.raises(ConfigurationError, match="tolerance"):
        verify_webhook_signature(SECRET, BODY, header, tolerance=tolerance)
    with pytest.raises(ConfigurationError, match="tolerance"):
        WebhookHandler(SECRET, _ignore, tolerance=tolerance)


async def _ignore(event: object) -> None:
    return None


@pytest.mark.parametrize("digits", [400, 5000])
async def test_the_handler_answers_401_to_a_huge_timestamp(digits: int) -> None:
    """Over HTTP, a t= of hundreds or thousands of digits is a 401, not a 500."""
    handler = WebhookHandler(SECRET, _ignore)
    app = web.Application()
    handler.install(app)
    async with TestClient(TestServer(app)) as http:
        response = await http.post(
            "/webhooks/opentrain",
            data=BODY,
            headers={"X-OpenTrain-Signature": f"t={'1' * digits},v1={'a' * 64}"},
        )
        assert response.status == 401
        assert await response.json() == {"ok": False, "error": "malformed"}
    assert handler.rejected == 1


def test_a_lone_surrogate_in_content_is_refused_naming_the_field() -> None:
    """validate paths report the field, the rule and the code point."""
    from opentrain_async._validation import validate_content

    with pytest.raises(InvalidRequestError) as info:
        validate_content("ok \ud83d then")
    assert info.value.field == "content"
    assert info.value.actual == "U+D83D"
    assert "index 3" in str(info.value)
