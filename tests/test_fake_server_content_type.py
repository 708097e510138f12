"""``FakeOpenTrain.script`` with the Content-Type given as a header, or with a charset:
served as given.  ``headers={"Content-Type": ...}`` crashed the handler (aiohttp refuses
a Content-Type header beside its ``content_type=``), and so did
``content_type="text/plain; charset=utf-8"``: the test got a 500 it never scripted."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from opentrain_async.testing import FakeOpenTrain


async def _get_me(server: FakeOpenTrain) -> tuple[int, str, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.api_url + "/auth/me") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.read()


@pytest.mark.parametrize(
    "how",
    [
        {"headers": {"Content-Type": "text/plain; charset=utf-8"}},
        {"headers": {"content-type": "text/plain; charset=utf-8"}},
        {"content_type": "text/plain; charset=utf-8"},
    ],
)
async def test_a_raw_body_is_served_with_the_content_type_given(
    server: FakeOpenTrain, how: dict[str, Any]
) -> None:
    server.script("GET /auth/me", status=503, body="busy", **how)
    assert await _get_me(server) == (503, "text/plain; charset=utf-8", b"busy")


async def test_the_error_envelope_takes_a_content_type_header(server: FakeOpenTrain) -> None:
    """A JSON envelope labelled text/plain: what a misconfigured proxy sends."""
    server.script("GET /auth/me", status=500, headers={"Content-Type": "text/plain"})
    status, content_type, body = await _get_me(server)
    assert (status, content_type) == (500, "text/plain")
    assert b'"error"' in body


def test_a_content_type_given_twice_is_refused_when_scripted() -> None:
    with pytest.raises(ValueError, match="give the Content-Type once"):
        FakeOpenTrain().script(
            "GET /auth/me",
            body="x",
            content_type="text/html",
            headers={"Content-Type": "text/plain"},
        )
