"""Where the token and base URL come from, in the official OpenTrain CLI's order.

token:    argument, env ``OT_API_TOKEN``, env ``OPENTRAIN_API_TOKEN``, then the CLI's file
          ``${XDG_CONFIG_HOME:-~/.config}/opentrain/cli.json`` (key ``apiToken``)
base URL: argument, env ``OT_API_BASE_URL``, env ``OPENTRAIN_API_BASE_URL``, the file's
          ``baseUrl``, then ``https://app.opentrain.ai``.

The base URL is an origin; ``/api/public/v1`` is appended (never twice).  Plain ``http://``
is refused unless the host is loopback, so a bearer token never travels in clear text.
Whatever would fail on every request fails here instead, once, as ``ConfigurationError``:
a token with control characters, a base URL with ``user:password@`` (never echoed), a
port out of range, a config file that is not UTF-8 JSON.  A blank token counts as none.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yarl import URL

from ._errors import ConfigurationError
from ._redis import has_userinfo, redact_url

__all__ = [
    "API_PREFIX",
    "DEFAULT_BASE_URL",
    "Settings",
    "api_root",
    "config_file_path",
    "home_directory",
    "resolve_settings",
    "state_directory",
    "without_userinfo",
]

logger = logging.getLogger("opentrain_async")

DEFAULT_BASE_URL = "https://app.opentrain.ai"
API_PREFIX = "/api/public/v1"
TOKEN_ENV_VARS = ("OT_API_TOKEN", "OPENTRAIN_API_TOKEN")
BASE_URL_ENV_VARS = ("OT_API_BASE_URL", "OPENTRAIN_API_BASE_URL")


class Settings:
    """A resolved token and API root; the token is kept out of ``repr``."""

    __slots__ = ("_token", "api_root", "token_source")

    def __init__(self, token: str, api_root: str, token_source: str) -> None:
        self._token = token
        self.api_root = api_root
        self.token_source = token_source

    @property
    def token(self) -> str:
        """The bearer token (never printed by the SDK)."""
        return self._token

    def __repr__(self) -> str:
        return f"Settings(api_root={self.api_root!r}, token=<redacted from {self.token_source}>)"


def home_directory() -> Path | None:
    """``Path.home()``, or None where there is none (no ``$HOME`` and a UID without a
    passwd entry, as OpenShift and distroless images run)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return None


def state_directory(env: Mapping[str, str], what: str, remedy: str) -> Path:
    """``${XDG_STATE_HOME:-~/.local/state}``; ``ConfigurationError`` saying ``what``
    lives there and ``remedy`` when there is no home directory."""
    state = env.get("XDG_STATE_HOME")
    if state:
        return Path(state)
    home = home_directory()
    if home is None:
        raise ConfigurationError(
            f"{what} under ~/.local/state, and there is no home directory here: set "
            f"XDG_STATE_HOME, or {remedy}"
        )
    return home / ".local" / "state"


def config_file_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The official CLI's config file: ``${XDG_CONFIG_HOME:-~/.config}/opentrain/cli.json``
    (None without a home directory: there is no such file)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME")
    if not base:
        home = home_directory()
        if home is None:
            return None
        base = str(home / ".config")
    return Path(base) / "opentrain" / "cli.json"


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would hang, /dev/zero never end
            raise ConfigurationError(f"{path} is not a regular file")
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        # utf-8-sig: an editor's byte order mark (Notepad's "UTF-8 with BOM") is fine.
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path} is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise ConfigurationError(f"{path} is not valid JSON") from None
    return data if isinstance(data, dict) else {}


_warned_readable: set[Path] = set()


def _warn_if_readable_by_others(path: Path) -> None:
    """Log once per file when the token file is readable by group or others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH) and path not in _warned_readable:
        _warned_readable.add(path)
        logger.warning(
            "%s holds an API token and is readable by other users (mode %04o); run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages (the raw
    text up to the last ``@``: a password holding ``/`` or ``#`` is hidden whole)."""
    return redact_url(url, keep_user=False)


def _check_token(token: str, source: str) -> str:
    """The token if it can go in an HTTP header; never echoes it."""
    for index, char in enumerate(token):
        if not " " <= char <= "~":
            raise ConfigurationError(
                f"the API token from {source} contains a character that cannot be sent in "
                f"an HTTP header (U+{ord(char):04X} at position {index}); tokens are "
                "printable ASCII (check for a pasted newline)"
            )
    if token[:7].lower() == "bearer ":  # pasted from a curl line: "Bearer Bearer ..." is a 401
        raise ConfigurationError(
            f"the API token from {source} starts with 'Bearer ': give the token alone "
            "(ot_pat_...); the SDK adds the scheme"
        )
    if token[:14].lower() == "authorization:":  # the whole header line, from a curl -H
        raise ConfigurationError(
            f"the API token from {source} starts with 'Authorization:': give the token "
            "alone (ot_pat_...); the SDK adds the header"
        )
    return token


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def api_root(base_url: str) -> str:
    """Turn an origin (or an origin with the API prefix) into the API root URL.

    Raises ``ConfigurationError`` (a ValueError) for a non-HTTP(S) URL, or for plain
    ``http://`` to a host that is not loopback.
    """
    url = base_url.strip().rstrip("/")
    shown = without_userinfo(url)
    if has_userinfo(url):  # checked on the raw text, before any parser can cut it
        raise ConfigurationError(
            f"base URL must not carry user:password@ ({shown!r}): the API authenticates by "
            "token, and the credentials would leak into logs and error messages"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "https://[::1": an unclosed IPv6 bracket
        raise ConfigurationError(f"base URL {shown!r} is not a valid URL: {exc}") from None
    if any(not char.isprintable() or char.isspace() for char in url):
        raise ConfigurationError(
            f"base URL {shown.encode('ascii', 'backslashreplace').decode()!r} contains "
            "whitespace or control characters"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"base URL must be an http(s) URL with a host, got {shown!r}")
    try:
        if parts.port == 0:  # raises for a port out of range or not a number
            raise ValueError("port 0 cannot be connected to")
        URL(url + API_PREFIX)
    except ValueError as exc:  # UnicodeError (a bad host name) included
        raise ConfigurationError(f"base URL {shown!r} is not a valid URL: {exc}") from None
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"refusing plain http:// to {parts.hostname}: the bearer token would travel in "
            "clear text; use https:// (plain http is allowed only for loopback hosts)"
        )
    if "?" in url or "#" in url:  # even empty: the API path would become the query
        raise ConfigurationError(f"base URL must not carry a query or fragment: {shown!r}")
    if url.endswith(API_PREFIX):
        return url
    return url + API_PREFIX


def resolve_settings(
    api_token: str | None = None,
    base_url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Resolve the token and API root the way the official CLI does."""
    for name, value in (("api_token", api_token), ("base_url", base_url)):
        if value is not None and not isinstance(value, str):
            # bytes from a secrets file, say: never echoed (it may be the token).
            hint = " (decode it: .decode())" if isinstance(value, bytes) else ""
            raise ConfigurationError(
                f"{name} must be a string or None, got {type(value).__name__}{hint}"
            )
    env = os.environ if env is None else env
    path = config_path if config_path is not None else config_file_path(env)
    file_data: dict[str, Any] | None = None

    def file_value(key: str) -> str | None:
        nonlocal file_data
        if file_data is None:
            file_data = {} if path is None else _read_config_file(path)
        value = file_data.get(key)
        if value is not None and not isinstance(value, str):  # never echoed: maybe the token
            raise ConfigurationError(
                f'"{key}" in {path} must be a string, got {type(value).__name__}'
            )
        return value if isinstance(value, str) and value.strip() else None

    # A blank token (spaces, an empty variable) counts as none: the next place is tried.
    token, source = api_token, "argument"
    if not (token and token.strip()):
        for name in TOKEN_ENV_VARS:
            if env.get(name, "").strip():
                token, source = env[name], f"${name}"
                break
        else:
            token, source = file_value("apiToken"), str(path)
            if token and path is not None:
                _warn_if_readable_by_others(path)
    if not token:
        raise ConfigurationError(
            "no OpenTrain API token found: pass api_token=..., or set OT_API_TOKEN or "
            "OPENTRAIN_API_TOKEN, or log in with the OpenTrain CLI so that "
            f"{path or '~/.config/opentrain/cli.json (no home directory here)'} holds "
            '"apiToken"'
        )
    token = _check_token(token.strip(), source)

    url = base_url
    if not url:
        for name in BASE_URL_ENV_VARS:
            if env.get(name):
                url = env[name]
                break
    if not url:
        url = file_value("baseUrl")
    return Settings(token, api_root(url or DEFAULT_BASE_URL), source)
