"""Narrow client cases on scripted answers: what the fake server never sends by itself."""

from __future__ import annotations

import pytest

from opentrain_async import (
    ConfigurationError,
    DeliveryUnknownError,
    OpenTrainClient,
    UnexpectedResponseError,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime


@pytest.mark.parametrize(
    ("payload", "body"),
    [({"ok": True, "message": {"id": 5}}, None), (None, "<html>created</html>")],
)
async def test_unreadable_2xx_on_a_send_is_an_unknown_outcome(
    server: FakeOpenTrain, payload: object, body: str | None
) -> None:
    """A 2xx whose body is not a message means 'probably committed': DeliveryUnknownError."""
    if body is None:
        server.script("POST /messages", status=201, json=payload)
    else:
        server.script("POST /messages", status=201, body=body, content_type="text/html")
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(DeliveryUnknownError) as info:
            await client.send_message("conv_1", "hi")
    assert isinstance(info.value.__cause__, UnexpectedResponseError)
    assert info.value.__cause__.status == 201


async def test_idempotent_post_retries_gateway_errors(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """request(..., idempotent=True) retries a 503 like a GET; a plain POST does not."""
    server.script("POST /thing", status=503, body="<html>busy</html>", content_type="text/html")
    server.script("POST /thing", status=200, json={"ok": True})
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep
    ) as client:
        status, payload = await client.request("POST", "/thing", idempotent=True)
    assert (status, payload) == (200, {"ok": True})
    assert len(no_wait.sleeps) == 1


async def test_a_closed_client_says_so(server: FakeOpenTrain) -> None:
    """Using a client after close() is a clear error, not a silently leaked new session."""
    client = OpenTrainClient(server.token, server.base_url)
    await client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.send_message("conv_1", "hi")
