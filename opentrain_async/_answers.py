"""What an answer or a transport failure becomes: a typed error with no secret in it.

``error_for`` turns an answer that is not a readable 2xx into its ``APIError``;
``failure_for`` turns aiohttp's error (or a timeout) into an ``APIConnectionError`` or
``APITimeoutError``.  Both scrub the token: proxies and debug pages echo request
headers, aiohttp's parser quotes the bytes it choked on, and Python may attach
aiohttp's error (which holds the request's headers) as ``__context__``
(``drop_foreign_context``).  ``read_capped`` reads a body up to
``max_response_bytes``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
from multidict import CIMultiDict

from ._config import without_userinfo
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    OpenTrainError,
    RedirectError,
    UnexpectedResponseError,
    error_from_response,
)
from ._json import json_dumps

__all__ = [
    "described",
    "drop_foreign_context",
    "error_for",
    "failure_for",
    "masked",
    "read_capped",
    "secret_forms",
    "without_secret",
]


def error_for(
    status: int,
    raw: bytes | None,
    headers: Mapping[str, str],
    method: str,
    path: str,
    *,
    token: str,
    max_response_bytes: int,
) -> APIError:
    """The typed error for an answer that is not a readable 2xx."""
    raw, headers = without_secret(token, raw, headers)
    request_id = headers.get("X-Request-Id")
    if 300 <= status < 400:
        location = without_userinfo(headers.get("Location", ""))[:300]
        where = f"to {location!r}" if location else "without a Location"
        text = (
            f"HTTP {status} redirect {where}: redirects are never followed, so the "
            "request was not repeated there"
        )
        if method == "POST" and path == "/messages":
            text += "; the message was not delivered"
        return RedirectError(
            text,
            location=location or None,
            status=status,
            request_id=request_id,
            method=method,
            path=path,
        )
    if raw is None:
        limit = f"a body over {max_response_bytes:,} bytes (max_response_bytes), not read"
        if 200 <= status < 300:
            return UnexpectedResponseError(
                f"HTTP {status} with {limit}",
                status=status,
                request_id=request_id,
                method=method,
                path=path,
            )
        raw = json_dumps({"error": f"HTTP {status} with {limit}"})
    return error_from_response(status, raw, headers, method=method, path=path)


def failure_for(
    exc: BaseException, method: str, path: str, *, timeout: aiohttp.ClientTimeout, token: str
) -> OpenTrainError:
    """The typed failure for aiohttp's error (or a timeout); never raised here, and
    never with aiohttp's error attached (it carries the request's headers)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError(
            f"{method} {path}: timed out connecting ({type(exc).__name__})",
            reached_server=False,
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError):  # the tunnel was never opened
        return APIConnectionError(
            f"{method} {path}: the proxy refused the connection ({exc.status})",
            reached_server=False,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return APIConnectionError(
            f"{method} {path}: could not connect: {exc}", reached_server=False
        )
    if isinstance(exc, asyncio.TimeoutError):
        return APITimeoutError(
            f"{method} {path}: no answer within "
            f"{timeout.total or timeout.sock_read or timeout.connect}s"
        )
    if isinstance(exc.__cause__, OpenTrainError):
        # A trace hook of ours refused the request as aiohttp was about to write it
        # (the Redis journal's fencing): that error, nothing sent.
        return exc.__cause__
    assert isinstance(exc, aiohttp.ClientError)
    return APIConnectionError(f"{method} {path}: connection failed: {described(exc, token)}")


async def read_capped(content: aiohttp.StreamReader, first: bytes, cap: int) -> bytes | None:
    """The rest of a body after its first piece; None once it exceeds ``cap`` bytes.

    Counts what arrives (after any decompression), so neither a false Content-Length
    nor a compressed answer can make the client buffer more than ``cap``.
    """
    chunks = [first]
    size = len(first)
    while size <= cap:
        chunk = await content.readany()
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None


_RAW_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')


def described(error: aiohttp.ClientError, secret: str) -> str:
    """aiohttp's error as text, without the answer bytes its parser quotes (``b'...'``).

    A malformed status line or header may echo the request (the token, perhaps cut
    short), so the quoted bytes are left out and the token is masked.
    """
    text = _RAW_BYTES.sub("b'...'", f"{type(error).__name__}: {error}")
    return text.replace(secret, "***")


def without_secret(
    secret: str, raw: bytes | None, headers: Mapping[str, str]
) -> tuple[bytes | None, Mapping[str, str]]:
    """An answer's body and headers with every echo of ``secret`` replaced by ``***``.

    Proxies and debug pages echo request headers back (``Authorization`` included); what
    the server says goes into exceptions, logs and CLI output, so the token must not.
    """
    forms = secret_forms(secret)
    if raw is not None:
        raw = _unescaped(raw)
        for form in forms:
            raw = raw.replace(form.encode(), b"***")
    if any(form in value for value in headers.values() for form in forms):
        headers = CIMultiDict((name, masked(value, forms)) for name, value in headers.items())
    return raw, headers


def _unescaped(raw: bytes) -> bytes:
    """A JSON body with ``\\uXXXX`` escapes written out again, so that an echo spelled in
    escapes (``\\u006f\\u0074...``, or ``\\u0026`` for ``&``) is masked like any other:
    parsed, it is the token verbatim in ``.message``.  The stdlib, not ``json_dumps``:
    a lone surrogate beside it (``\\ud800``) must not keep the body escaped.  Any other
    body is returned as it is."""
    if b"\\u" not in raw:
        return raw
    try:
        text = json.dumps(json.loads(raw), ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
        return raw
    return text.encode("utf-8", "surrogatepass")


def masked(value: str, forms: tuple[str, ...]) -> str:
    """``value`` with each of ``forms`` (``secret_forms``) replaced by ``***``."""
    for form in forms:
        value = value.replace(form, "***")
    return value


@functools.lru_cache(maxsize=8)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The ways an echo spells ``secret``: verbatim, JSON-escaped (``\\/`` too) and
    URL-encoded (as a proxy's debug page quotes a header); longest first."""
    escaped = json.dumps(secret)[1:-1]
    forms = {secret, escaped, secret.replace("/", "\\/"), escaped.replace("/", "\\/")}
    forms |= {quote(secret, safe=""), quote(secret)}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def drop_foreign_context(error: BaseException) -> None:
    """Detach every implicit ``__context__`` that is not one of ours from ``error``'s chain.

    Our failures are raised outside the handler that caught aiohttp's error, whose
    request headers hold the token.  Python 3.10 still attaches such an error as
    ``__context__`` when a coroutine is resumed while one is being handled further up the
    stack (its exception state is per thread); error reporters walk that chain.
    """
    stack: list[BaseException] = [error]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.__context__ is not None and not isinstance(node.__context__, OpenTrainError):
            node.__context__ = None
        stack.extend(e for e in (node.__cause__, node.__context__) if isinstance(e, OpenTrainError))
