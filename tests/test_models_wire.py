"""``to_dict()``/``to_json()`` give models back in the API's own JSON shape."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from opentrain_async import Message, OpenTrainClient, OutgoingMessage
from opentrain_async._models import structure
from opentrain_async._read_models import Conversation, Event, WhoAmI
from opentrain_async.testing import FakeOpenTrain

PACKAGE = Path(__file__).resolve().parents[1] / "opentrain_async"


async def test_models_round_trip_through_to_dict_in_the_api_s_shape(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A sent message's ``to_dict()`` equals what the server stored (camelCase, ISO-8601 Z),
    and read models structure back from their own ``to_dict()`` unchanged."""
    conv = server.add_conversation()
    sent = await client.send_message(conv, "Batch 7 is live")
    stored = server.messages(conv)[-1]
    as_dict = sent.to_dict()
    assert {k: as_dict[k] for k in stored if k in as_dict} == {
        k: v for k, v in stored.items() if k in as_dict
    }
    assert as_dict["conversationId"] == conv
    assert as_dict["createdAt"].endswith("Z")
    assert json.loads(sent.to_json()) == as_dict
    assert structure(as_dict, Message) == sent
    server.add_event("message.received", {"conversationId": conv, "messageId": sent.id})
    conversation = await client.iter_conversations().__anext__()
    event = await client.iter_updates().__anext__()
    me = await client.whoami()
    for model, cls in ((conversation, Conversation), (event, Event), (me, WhoAmI)):
        assert structure(json.loads(model.to_json()), cls) == model


def test_to_json_keeps_text_and_indents_on_request() -> None:
    """Non-ASCII text stays readable in to_json(); ``indent`` pretty-prints."""
    outgoing = OutgoingMessage("conv_1", "héllo 😀", key="row-1")
    assert outgoing.to_dict() == {"conversationId": "conv_1", "content": "héllo 😀", "key": "row-1"}
    assert '"héllo 😀"' in outgoing.to_json()
    assert outgoing.to_json(indent=2).startswith('{\n  "conversationId"')


def test_the_cli_uses_no_private_converter() -> None:
    """The command line prints models through their public to_dict/to_json."""
    for path in (PACKAGE / "_cli").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "opentrain_async._models":
                assert "converter" not in {alias.name for alias in node.names}, path
