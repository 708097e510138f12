"""Hostile servers that echo the request's Authorization header back (as debug pages and
some proxies do): the token never reaches an error, its chain or its attributes."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from aiohttp import web

from opentrain_async import (
    APIConnectionError,
    APIError,
    DeliveryUnknownError,
    OpenTrainClient,
    OpenTrainError,
    RateLimitError,
    RedirectError,
    RetryEvent,
    RetryPolicy,
    UnexpectedResponseError,
)

from .test_hostile import MESSAGE, SECRETS, TOKEN, Arena, arena, caught, find_secrets

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


Echo = Callable[[str], web.Response]


def _envelope(status: int) -> Echo:
    def answer(auth: str) -> web.Response:
        body = {
            "error": f"invalid header: Authorization: {auth}",
            "code": "BAD",
            "requestId": auth,
            "details": {"reason": auth, "headers": {"authorization": auth}},
        }
        return web.json_response(body, status=status)

    return answer


def _html(status: int) -> Echo:
    def answer(auth: str) -> web.Response:
        return web.Response(status=status, text=f"<pre>{auth}</pre>", content_type="text/html")

    return answer


def _header(status: int, name: str) -> Echo:
    def answer(auth: str) -> web.Response:
        value = f"https://elsewhere.example/?h={auth}" if name == "Location" else auth
        return web.Response(status=status, text="{}", headers={name: value})

    return answer


ECHOES: dict[str, Echo] = {
    "400 envelope": _envelope(400),
    "401 envelope": _envelope(401),
    "409 envelope": _envelope(409),
    "429 envelope": _envelope(429),
    "500 envelope": _envelope(500),
    "502 html page": _html(502),
    "404 html page": _html(404),
    "302 Location": _header(302, "Location"),
    "404 X-Request-Id": _header(404, "X-Request-Id"),
    "200 X-Request-Id, body not JSON": lambda auth: web.Response(
        text="<html>", headers={"X-Request-Id": auth}
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES))
async def test_an_answer_that_echoes_the_token_never_puts_it_in_an_error(
    arena: Arena, echo: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's text reaches exceptions, retry events and logs with the token as ***."""
    caplog.set_level(logging.DEBUG, logger="opentrain_async")

    async def answer(request: web.Request) -> web.StreamResponse:
        return ECHOES[echo](request.headers["Authorization"])

    arena.hostile.handler = answer
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_retries=1, sleep=_no_wait, on_retry=events.append)
    errors: list[BaseException] = []
    async with arena.client(retry_policy=policy) as client:
        errors.append(await caught(client.whoami()))
        errors.append(await caught(client.send_message("conv_1", "hi")))
    errors += [event.error for event in events]
    for error in errors:
        assert list(find_secrets(error)) == [], error
    assert all(isinstance(error, OpenTrainError) for error in errors)
    # Still the error the status says, with the server's text (only the token masked).
    first = errors[0]
    if isinstance(first, RedirectError):
        assert first.location == "https://elsewhere.example/?h=Bearer ***"
    elif isinstance(first, APIError) and "envelope" in echo:
        assert first.message == "invalid header: Authorization: Bearer ***"
        assert first.request_id == "Bearer ***"
    if echo.startswith("429"):
        assert isinstance(first, RateLimitError)
        assert events  # retried, and the retry log line names the (masked) request id
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)


@pytest.mark.parametrize("field", ["createdAt", "updatedAt"])
async def test_a_timestamp_that_echoes_the_token_is_refused_without_it(
    arena: Arena, field: str
) -> None:
    """A 2xx whose timestamp is the Authorization header: an unreadable answer whose
    message (and chain) does not quote the value."""

    async def answer(request: web.Request) -> web.StreamResponse:
        message = {**MESSAGE["message"], field: request.headers["Authorization"]}
        if request.method == "POST":
            return web.json_response({"ok": True, "message": message}, status=201)
        return web.json_response({"messages": [message], "nextCursor": None})

    arena.hostile.handler = answer
    async with arena.client() as client:
        read = await caught(client.read_messages("conv_1"), UnexpectedResponseError)
        sent = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    assert "ISO-8601 timestamp" in str(read)
    for error in (read, sent):
        assert list(find_secrets(error)) == [], error


async def _no_wait(seconds: float) -> None:
    return None


# -- answers aiohttp cannot parse, quoting the request back ------------------------------

_AUTH = f"Bearer {TOKEN}".encode()


GARBLED = {
    "status line": b"HTTP/1.1 abc " + _AUTH + b"\r\n\r\n",
    "status line, token cut short": b"HTTP/1.1 abc " + _AUTH[:20] + b"\r\n\r\n",
    "header with NUL": b"HTTP/1.1 200 OK\r\nX-Echo: " + _AUTH + b"\x00\r\n\r\n",
    "header over 8 KiB": b"HTTP/1.1 200 OK\r\nX-Echo: " + _AUTH + b"a" * 9000 + b"\r\n\r\n",
    "chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _AUTH + b"\r\n",
    "Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: " + _AUTH + b"\r\n\r\n",
}


@pytest.mark.parametrize("garbled", list(GARBLED))
async def test_an_unparsable_answer_quoting_the_token_is_not_quoted_back(
    arena: Arena, garbled: str
) -> None:
    """aiohttp's parser errors quote the bytes it choked on; a server echoing the request
    there put the token (or its first characters) into APIConnectionError's message."""
    arena.raw_answers += [GARBLED[garbled]] * 2
    async with OpenTrainClient(TOKEN, arena.raw_url, env={}, max_retries=0) as client:
        read = await caught(client.whoami(), APIConnectionError)
        sent = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    for error in (read, sent):
        assert list(find_secrets(error)) == [], error
        assert TOKEN[:12] not in str(error)
    assert "connection failed: ClientResponseError" in str(read)  # what failed is still said
