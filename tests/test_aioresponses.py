"""Users mock aiohttp with aioresponses: the SDK must be drivable by their mocks.

aioresponses 0.7.9 cannot build responses for aiohttp 3.14; the maintained fork
``aioresponses-ng`` (same import name) can, and is what the dev extra installs.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from opentrain_async import DeliveryUnknownError, Message, OpenTrainClient, RateLimitError
from opentrain_async.testing import FakeTime

ORIGIN = "https://app.opentrain.ai"
SEND_URL = ORIGIN + "/api/public/v1/messages"
TOKEN = "ot_pat_mocked"
STORED: dict[str, Any] = {
    "id": "msg_1",
    "conversationId": "conv_1",
    "content": "Batch 7 is live",
    "createdAt": "2026-06-12T09:15:00.000Z",
    "senderUserId": "user_me",
    "isFromViewer": True,
}


async def test_a_users_mock_of_post_messages_drives_send_message() -> None:
    """A user's aioresponses mock of POST /messages is what send_message sends to and parses."""
    with aioresponses() as mocked:
        mocked.post(SEND_URL, status=201, payload={"ok": True, "message": STORED})
        async with OpenTrainClient(TOKEN, ORIGIN) as client:
            message = await client.send_message("conv_1", "Batch 7 is live")
        ((key, calls),) = mocked.requests.items()
    assert isinstance(message, Message)
    assert (message.id, message.content, message.is_from_viewer) == (
        "msg_1",
        "Batch 7 is live",
        True,
    )
    assert key[0] == "POST"
    assert str(key[1]) == SEND_URL
    (sent,) = calls
    assert json.loads(sent.kwargs["data"]) == {
        "conversationId": "conv_1",
        "content": "Batch 7 is live",
    }
    assert sent.kwargs["headers"]["Authorization"] == f"Bearer {TOKEN}"


async def test_a_mocked_429_is_retried_after_its_hint_in_fake_time() -> None:
    """A mocked 429 with a Retry-After header is waited out (in fake time) and retried."""
    time = FakeTime()
    with aioresponses() as mocked:
        mocked.post(
            SEND_URL,
            status=429,
            payload={"error": "Rate limit exceeded", "code": "RATE_LIMITED"},
            headers={"Retry-After": "2"},
        )
        mocked.post(SEND_URL, status=201, payload={"ok": True, "message": STORED})
        async with OpenTrainClient(TOKEN, ORIGIN, sleep=time.sleep, clock=time.clock) as client:
            message = await client.send_message("conv_1", "Batch 7 is live")
    assert message.id == "msg_1"
    assert time.sleeps[0] >= 2.0


async def test_mocked_failures_are_typed_errors() -> None:
    """A dropped send is an unknown outcome (not resent blindly) and an over-long hint raises
    at once: the SDK's own errors, from a user's mocks."""
    with aioresponses() as mocked:
        mocked.post(SEND_URL, exception=aiohttp.ServerDisconnectedError())
        mocked.post(
            SEND_URL,
            status=429,
            payload={
                "error": "slow down",
                "code": "RATE_LIMITED",
                "details": {"retryAfterSeconds": 900},
            },
        )
        async with OpenTrainClient(TOKEN, ORIGIN) as client:
            with pytest.raises(DeliveryUnknownError) as dropped:
                await client.send_message("conv_1", "a")
            with pytest.raises(RateLimitError) as limited:
                await client.send_message("conv_1", "b")
        assert len(next(iter(mocked.requests.values()))) == 2
    assert "disconnected" in str(dropped.value).lower()
    assert limited.value.retry_after == 900
