"""A 2xx to a send whose fields echo the Authorization header (its message id, its
conversation, its ``ok``): the answer does not describe the message sent, so its
outcome is unknown, and the error saying why quotes those fields.  The token must be
masked there, and in the log record naming what read-back found (README "Secrets")."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web

from opentrain_async import DeliveryUnknownError

from .test_hostile import MESSAGE, SECRETS, Arena, arena, caught, find_secrets

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


def echoing(field: str, auth: str, sent: dict[str, Any]) -> dict[str, Any]:
    """A 201 body describing ``sent`` but for ``field``, which is the header's value."""
    message = {**MESSAGE["message"], **sent, "createdAt": "2030-01-01T00:00:00.000Z"}
    if field == "ok":
        return {"ok": auth, "message": message}
    if field == "id":
        message["content"] = "other"  # a mismatch quoting the id
    message[field] = auth
    return {"ok": True, "message": message}


@pytest.mark.parametrize("field", ["id", "conversationId", "ok"])
async def test_a_201_echoing_the_token_is_unknown_without_it(
    arena: Arena, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="opentrain_async")

    async def answer(request: web.Request) -> web.StreamResponse:
        auth = request.headers["Authorization"]
        if request.method == "POST":
            sent = json.loads(await request.read())
            return web.json_response(echoing(field, auth, sent), status=201)
        # Read-back: our message is there, under the echoed id.
        found = {**MESSAGE["message"], "id": auth, "createdAt": "2030-01-01T00:00:00.000Z"}
        return web.json_response({"messages": [found], "nextCursor": None})

    arena.hostile.handler = answer
    async with arena.client() as client:
        error = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
        assert list(find_secrets(error)) == [], error
        assert "Bearer ***" in str(error)  # the field is still named, masked
        client.reconcile_delay = 0
        report = await client.send_all([("conv_1", "hi")])  # settled by read-back
    assert report.counts["sent"] == 1
    assert any("read-back found" in record.getMessage() for record in caplog.records)
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)
