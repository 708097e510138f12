"""Which HTTP proxy the API is reached through, from the environment (as curl, requests
and httpx read it): ``https_proxy``/``HTTPS_PROXY`` for an https API, ``http_proxy`` for
http (the upper-case one is ignored under CGI, as urllib does), ``all_proxy`` otherwise,
and ``no_proxy``/``NO_PROXY`` to bypass.  Loopback hosts are never proxied (as Go's
net/http), so a local test server works whatever the shell exports.

The proxy is resolved once per client, not per request: every request of a client goes
to one host, and aiohttp's own ``trust_env`` would look it up (and read ``~/.netrc``) in
a thread on every request.

A proxy the SDK cannot speak (``socks5://``) is a ``ConfigurationError`` naming the
variable, never a silent direct connection past the proxy the operator configured.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from yarl import URL

from ._errors import ConfigurationError

__all__ = ["PROXY_SCHEMES", "Proxy", "proxy_from_env"]

PROXY_SCHEMES = frozenset({"http", "https"})
"""What aiohttp speaks to a proxy: plain HTTP, or TLS to the proxy (an https API through
an https:// proxy is TLS in TLS, which asyncio does from Python 3.11).  SOCKS is not."""

logger = logging.getLogger("opentrain_async")


class Proxy(NamedTuple):
    """A proxy URL without credentials, and its ``Proxy-Authorization`` value if any."""

    url: URL
    authorization: str | None

    def __repr__(self) -> str:
        credentials = ", authorization=<redacted>" if self.authorization else ""
        return f"Proxy({str(self.url)!r}{credentials})"


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bypassed(host: str, no_proxy: str) -> bool:
    """``no_proxy`` as curl reads it: ``*``, host names matching as domain suffixes
    (``example.com`` and ``.example.com`` both cover ``api.example.com``), IPs, CIDRs."""
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.strip("[]")
        )
    except ValueError:
        address = None
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
        entry = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry  # drop a port
        entry = entry.lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _lookup(env: Mapping[str, str], name: str, *, upper: bool = True) -> str | None:
    value = env.get(name) or (env.get(name.upper()) if upper else None)
    return value.strip() if value and value.strip() else None


def proxy_from_env(api_root: str, env: Mapping[str, str]) -> Proxy | None:
    """The proxy (and its credentials) for requests to ``api_root``, or None for direct."""
    parts = urlsplit(api_root)
    host = parts.hostname or ""
    if not host or _is_loopback(host):
        return None
    no_proxy = _lookup(env, "no_proxy")
    if no_proxy and _bypassed(host, no_proxy):
        return None
    scheme = parts.scheme
    # httpoxy: under CGI, HTTP_PROXY can be set by a request header; urllib ignores it too.
    name = f"{scheme}_proxy"
    raw = _lookup(env, name, upper=scheme != "http" or "REQUEST_METHOD" not in env)
    if raw is None:
        name, raw = "all_proxy", _lookup(env, "all_proxy")
    if raw is None:
        return None
    if "://" not in raw:
        raw = "http://" + raw
    try:
        url = URL(raw)
        url.port  # noqa: B018 - parsed lazily: a bad port raises here, not on the first request
    except ValueError:
        pass  # raised below, outside the handler: yarl's error may quote the URL
    else:
        if url.scheme not in PROXY_SCHEMES:
            # Going direct would bypass the proxy the operator configured (httpx and
            # requests fail too); the value is not named (it may hold a password).
            raise ConfigurationError(
                f"the {name} (or {name.upper()}) environment variable names a proxy this "
                "SDK cannot use (only http:// and https:// proxies); unset it, add the API "
                "host to NO_PROXY, or pass trust_env=False"
            )
        if url.host:
            return _proxy(url, host)
    # What requests would send goes nowhere: refuse now, as httpx does, never naming the
    # value (it may hold the proxy's password).
    raise ConfigurationError(
        f"the {name} (or {name.upper()}) environment variable is not a valid proxy URL "
        "(expected http://[user:password@]host[:port]); fix or unset it, or pass "
        "trust_env=False"
    )


def _proxy(url: URL, host: str) -> Proxy:
    """The proxy a parsed http:// or https:// URL from the environment names for
    ``host``, its credentials moved to a ``Proxy-Authorization`` value."""
    authorization = None
    if url.raw_user is not None:
        pair = f"{unquote(url.raw_user)}:{unquote(url.raw_password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        url = url.with_user(None)
    logger.debug("reaching %s through the proxy %s", host, url)
    return Proxy(url, authorization)
