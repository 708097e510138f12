"""``aclose()`` of a ``send_many`` called while another call is closing it (a shutdown
handler's and the ``async with`` ending, two tasks): every call returns once the workers
have stopped, with ``unreported`` complete.  Before, the second call returned at once:
four sends still on the wire and ``unreported`` empty, the caller reading it lost them
silently ("Leaving early loses nothing silently", README)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


async def test_a_second_aclose_waits_for_the_first() -> None:
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        server.script("POST /messages", delay=0.3, times=None)  # slow sends, in the grace
        async with OpenTrainClient(server.token, server.base_url) as client:
            stream = client.send_many([(c, "notice") for c in convs], concurrency=4)
            consumer = asyncio.create_task(stream.__anext__())
            await _until(lambda: client.in_flight == 4, "four sends never left")
            first = asyncio.create_task(stream.aclose(grace=10))
            await asyncio.sleep(0)  # the first call is under way: waiting for the sends
            await stream.aclose()
            assert client.in_flight == 0
            assert sorted(o.index for o in stream.unreported) == [0, 1, 2, 3]
            assert {o.kind for o in stream.unreported} == {"sent"}
            await asyncio.wait_for(first, 10)
            assert len(stream.unreported) == 4
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)


async def test_the_async_with_ending_after_another_tasks_aclose_waits_too() -> None:
    """The shape of a shutdown handler: it closes the stream, the loop under
    ``async with`` ends and reads ``unreported``."""
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        server.script("POST /messages", delay=0.3, times=None)
        async with OpenTrainClient(server.token, server.base_url) as client:
            stream = client.send_many([(c, "notice") for c in convs], concurrency=4)
            seen: list[int] = []

            async def loop() -> None:
                async with stream as outcomes:
                    async for outcome in outcomes:
                        seen.append(outcome.index)

            task = asyncio.create_task(loop())
            await _until(lambda: client.in_flight == 4, "four sends never left")
            closing = asyncio.create_task(stream.aclose(grace=10))
            await asyncio.wait_for(task, 10)  # the loop sees the end and leaves
            assert client.in_flight == 0
            assert seen == []
            assert sorted(o.index for o in stream.unreported) == [0, 1, 2, 3]
            await asyncio.wait_for(closing, 10)
