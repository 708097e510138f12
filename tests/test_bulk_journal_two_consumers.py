"""Two tasks reading one ``send_many(journal=...)`` (as they may read one without a
journal, tests/test_bulk.py::test_two_consumers_share_one_stream): the journal is
taken over once, and each input has one outcome.  Before, both consumers opened the
journal at the start, and the stream's own lock refused the second with
``JobBusyError`` ("held by this process ... left without being closed")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime


async def test_two_consumers_of_a_journaled_stream_share_it(tmp_path: Path) -> None:
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        items = [(conv, f"notice {i}") for i in range(20)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            stream = client.send_many(items, journal=tmp_path / "batch.journal")
            seen: list[list[int]] = [[], []]

            async def consume(into: list[int]) -> None:
                async for outcome in stream:
                    into.append(outcome.index)
                    await asyncio.sleep(0)

            async with stream:
                await asyncio.wait_for(asyncio.gather(consume(seen[0]), consume(seen[1])), 10)
            assert sorted(seen[0] + seen[1]) == list(range(20))
            rerun = await client.send_all(items, journal=tmp_path / "batch.journal")
        assert rerun.sent == 20
        assert len(server.messages(conv)) == 20
        assert len(server.sends) == 20
