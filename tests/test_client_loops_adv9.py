"""adv9: a client across ``asyncio.run()`` calls (adv8's loop check, d8c0db1), against a
fake server living in a thread of its own so that it outlives each loop.  Held: a client
made in one loop and first used in a second (the first closed) works there; one used in
the first is refused in the second, before anything reaches the server, and closes."""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Iterator

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


@pytest.fixture
def threaded_server() -> Iterator[tuple[FakeOpenTrain, str]]:
    """A FakeOpenTrain served by its own thread's loop; (server, conversation id)."""
    ready, stop = threading.Event(), threading.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        async with FakeOpenTrain() as server:
            box["server"], box["conv"] = server, server.add_conversation()
            ready.set()
            await asyncio.to_thread(stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    ready.wait(10)
    try:
        yield box["server"], box["conv"]  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(10)


def test_a_client_made_in_one_loop_works_in_the_next(
    threaded_server: tuple[FakeOpenTrain, str],
) -> None:
    server, conv = threaded_server

    async def make() -> OpenTrainClient:
        return OpenTrainClient(server.token, server.base_url, env={}, max_concurrency=2)

    async def use(client: OpenTrainClient) -> int:
        async with client:
            report = await client.send_all([(conv, f"m{i}") for i in range(4)])
            return report.counts["sent"]

    client = asyncio.run(make())
    assert asyncio.run(use(client)) == 4


def test_a_client_used_in_an_ended_loop_is_refused_in_the_next(
    threaded_server: tuple[FakeOpenTrain, str],
) -> None:
    server, conv = threaded_server

    async def first() -> OpenTrainClient:
        client = OpenTrainClient(server.token, server.base_url, env={}, max_concurrency=2)
        await client.send_all([(conv, f"a{i}") for i in range(4)])  # contended: bound
        return client

    async def second(client: OpenTrainClient) -> list[str]:
        try:
            report = await client.send_all([(conv, "b0"), (conv, "b1")])
            with pytest.raises(ConfigurationError, match="event loop that has ended"):
                await client.send_message(conv, "single")
            return [o.kind for o in report.failures]
        finally:
            await client.close()

    client = asyncio.run(first())
    before = len(server.requests)
    assert asyncio.run(second(client)) == ["error", "not_attempted"]
    assert len(server.requests) == before
    # The first loop's keep-alive sockets, never closed there (the user's slip), leak:
    # collected here, their ResourceWarning expected, not left to a later test.
    del client
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
