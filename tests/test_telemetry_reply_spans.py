"""A bot's ``client.reply()`` sends messages too: each answer is one message span, with
its read-back and send as children, and one counted outcome, as ``send_message`` is."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opentrain_async import BadRequestError, Message, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .telemetry_helpers import Telemetry, use_global_providers


async def _incoming(client: OpenTrainClient, cid: str, message_id: str) -> Message:
    return [m async for m in client.iter_messages(cid) if m.id == message_id].pop()


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def test_a_reply_is_a_message_span_and_an_outcome(
    otel: Telemetry, server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    cid = server.add_conversation()
    message_id = server.add_incoming_message(cid, "hi")["id"]
    incoming = await _incoming(client, cid, message_id)
    otel.exporter.clear()
    await client.reply(incoming, "hello")
    server.fail_next(1, status=400)
    other = server.add_incoming_message(cid, "again")["id"]
    second = await _incoming(client, cid, other)
    otel.exporter.clear()
    with pytest.raises(BadRequestError):
        await client.reply(second, "refused")
    spans = otel.spans()
    (message,) = (s for s in spans if s.name == "opentrain.message.send")
    children = {s.name for s in spans if s.parent and s.parent.span_id == message.context.span_id}
    assert children == {"GET /messages", "POST /messages"}
    assert message.attributes["opentrain.outcome"] == "bad_request"
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "sent"}) == 1
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "bad_request"}) == 1
