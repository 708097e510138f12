"""The loop over ``send_many`` cancelled (``asyncio.timeout``, a task cancelled) under
``async with``: it stops at once, and still every pulled input has one outcome, seen by
the loop or in ``unreported``: delivered ones waiting for the loop as delivered, sends
cut off on the wire as ``delivery_unknown`` (they may have landed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async.testing import FakeOpenTrain

from .waiting import until


def _items(convs: list[str], pulled: list[int]) -> Iterator[tuple[str, str]]:
    for i, conv in enumerate(convs):
        pulled.append(i)
        yield (conv, f"m{i}")


async def test_cancelled_while_sends_are_on_the_wire() -> None:
    """Every send stalls on the server; the loop waiting for an outcome is cancelled.
    Before, ``unreported`` was empty: four inputs pulled, none accounted for."""
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        pulled: list[int] = []
        seen: list[SendOutcome] = []
        server.script("POST /messages", delay=60, times=None)
        async with OpenTrainClient(server.token, server.base_url) as client:
            stream = client.send_many(_items(convs, pulled), concurrency=4, ordered=False)

            async def consume() -> None:
                async with stream as outcomes:
                    async for outcome in outcomes:
                        seen.append(outcome)

            task = asyncio.create_task(consume())
            await until(lambda: len(server.requests) >= 4, "four sends never got there")
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)
            assert done, "a cancelled loop must stop at once, not wait for the wire"
        assert seen == []
        assert sorted(o.index for o in stream.unreported) == pulled
        assert {o.kind for o in stream.unreported} == {"delivery_unknown"}


async def test_cancelled_in_the_loop_body_keeps_the_delivered_outcomes() -> None:
    """Every input delivered while the loop's body is busy with the first outcome; the
    body is cancelled there.  Before, the five delivered outcomes waiting for the loop
    were dropped: five messages on the server, no outcome anywhere."""
    async with FakeOpenTrain() as server:
        convs = [server.add_conversation() for _ in range(6)]
        pulled: list[int] = []
        seen: list[SendOutcome] = []
        async with OpenTrainClient(server.token, server.base_url) as client:
            stream = client.send_many(_items(convs, pulled), concurrency=4, ordered=False)

            async def consume() -> None:
                async with stream as outcomes:
                    async for outcome in outcomes:
                        seen.append(outcome)
                        await asyncio.Event().wait()  # busy until cancelled

            task = asyncio.create_task(consume())
            # Every answer in (the client's, not only the server's commit: under load the
            # cancel came while 201s were still on their way, and those sends were cut off).
            await until(
                lambda: (
                    server.stats()["committed"] == 6 and bool(seen) and client.stats.in_flight == 0
                ),
                "no sends",
            )
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)
            assert done
        assert len(seen) == 1
        unreported = stream.unreported
        assert sorted(o.index for o in seen + unreported) == pulled == list(range(6))
        assert all(o.ok for o in unreported), [o.error for o in unreported]
