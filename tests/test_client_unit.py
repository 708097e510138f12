"""Narrow client cases on canned loopback answers: what the fake server never sends."""

from __future__ import annotations

import pytest

from opentrain_async import (
    ConfigurationError,
    DeliveryUnknownError,
    OpenTrainClient,
    UnexpectedResponseError,
)

from .conftest import Canned, RecordingSleep


@pytest.mark.parametrize(
    ("payload", "body"),
    [({"ok": True, "message": {"id": 5}}, None), (None, "<html>created</html>")],
)
async def test_unreadable_2xx_on_a_send_is_an_unknown_outcome(
    http: tuple[Canned, str], payload: object, body: str | None
) -> None:
    """A 2xx whose body is not a message means 'probably committed': DeliveryUnknownError."""
    canned, url = http
    canned.post("/messages", payload=payload, status=201, body=body)
    async with OpenTrainClient("ot_pat_unit", url) as client:
        with pytest.raises(DeliveryUnknownError) as info:
            await client.send_message("conv_1", "hi")
    assert isinstance(info.value.__cause__, UnexpectedResponseError)
    assert info.value.__cause__.status == 201


async def test_idempotent_post_retries_gateway_errors(
    http: tuple[Canned, str], no_wait: RecordingSleep
) -> None:
    """request(..., idempotent=True) retries a 503 like a GET; a plain POST does not."""
    canned, url = http
    canned.post("/thing", status=503, body="<html>busy</html>")
    canned.post("/thing", payload={"ok": True}, status=200)
    async with OpenTrainClient("ot_pat_unit", url, sleep=no_wait) as client:
        status, payload = await client.request("POST", "/thing", idempotent=True)
    assert (status, payload) == (200, {"ok": True})
    assert len(no_wait.waits) == 1


async def test_a_closed_client_says_so(http: tuple[Canned, str]) -> None:
    """Using a client after close() is a clear error, not a silently leaked new session."""
    _, url = http
    client = OpenTrainClient("ot_pat_unit", url)
    await client.close()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.send_message("conv_1", "hi")
