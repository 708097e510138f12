"""A custom ``CursorStore`` as users write them: one backed by a Redis client without
``decode_responses`` hands back bytes, one backed by a table column hands back ``""`` or
a number.  ``listen()`` reads bytes as the string it saved, and refuses anything else
with a ``ConfigurationError`` naming the store (never a ``TypeError`` from inside)."""

from __future__ import annotations

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .conftest import make_client


class BytesStore:
    """Saves strings, loads them back as bytes (``redis.get`` without decoding)."""

    def __init__(self) -> None:
        self.value: bytes | None = None

    async def load(self) -> bytes | None:
        return self.value

    async def save(self, position: str) -> None:
        self.value = position.encode("utf-8")


class Returns:
    def __init__(self, value: object) -> None:
        self.value = value

    async def load(self) -> object:
        return self.value

    async def save(self, position: str) -> None:  # pragma: no cover - never reached
        raise AssertionError("nothing may be saved over a position that was not read")


async def handled(client: OpenTrainClient, store: object) -> list[str]:
    async with client.listen(store=store, until_idle=True, start="beginning") as messages:  # type: ignore[arg-type]
        return [m.content async for m in messages]


async def test_a_store_that_loads_bytes_resumes_where_it_stopped(server: FakeOpenTrain) -> None:
    conversation = server.add_conversation()
    server.add_incoming_message(conversation, "first")
    store = BytesStore()
    async with make_client(server) as client:
        assert await handled(client, store) == ["first"]
        server.add_incoming_message(conversation, "second")
        assert await handled(client, store) == ["second"]


@pytest.mark.parametrize("value", ["", "   ", 123, ["cursor"]])
async def test_a_store_that_loads_a_non_position_is_a_configuration_error(
    server: FakeOpenTrain, value: object
) -> None:
    server.add_incoming_message(server.add_conversation(), "hello")
    async with make_client(server) as client:
        with pytest.raises(ConfigurationError, match=r"Returns\.load\(\) returned"):
            await handled(client, Returns(value))
