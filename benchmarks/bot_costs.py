"""What a bot pays for answering once: per-message checkpoints and ``reply()``'s read-back.

``python -m benchmarks.bot_costs [--n 500] [--rounds 3]`` puts N incoming messages in 20
conversations on an in-process fake server and prints, per message (median of ROUNDS):
``listen()`` over them with the JSON file store (one fsync per finished message) and
with ``MemoryCursorStore`` (the loop alone), then answering each with ``send_message``
and with ``reply()`` (one read of the conversation first).  The incoming messages are
stored in a burst, so each read-back walks the burst's few seconds: an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from opentrain_async import CursorStore, MemoryCursorStore, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


def _fill(server: FakeOpenTrain, n: int) -> None:
    conversations = [server.add_conversation() for _ in range(20)]
    for i in range(n):
        server.add_incoming_message(conversations[i % 20], f"question {i}")


async def _listen(n: int, store: CursorStore | Path) -> float:
    async with FakeOpenTrain() as server:
        _fill(server, n)
        async with OpenTrainClient(server.token, server.base_url) as client:
            started = time.perf_counter()
            listener = client.listen(store=store, start="beginning", until_idle=True)
            got = [m async for m in listener]
            assert len(got) == n
            return (time.perf_counter() - started) / n


async def _answer(n: int, *, reply: bool) -> float:
    async with FakeOpenTrain() as server:
        _fill(server, n)
        async with OpenTrainClient(server.token, server.base_url) as client:
            listener = client.listen(store=MemoryCursorStore(), start="beginning", until_idle=True)
            messages = [m async for m in listener]
            started = time.perf_counter()
            for m in messages:
                text = f"echo: {m.content}"
                if reply:
                    await client.reply(m, text)
                else:
                    await client.send_message(m.conversation_id, text)
            return (time.perf_counter() - started) / n


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        files = [await _listen(n, Path(directory) / f"c{i}.json") for i in range(rounds)]
    memory = [await _listen(n, MemoryCursorStore()) for _ in range(rounds)]
    sends = [await _answer(n, reply=False) for _ in range(rounds)]
    replies = [await _answer(n, reply=True) for _ in range(rounds)]
    for name, values in (
        ("listen(), JSON file store", files),
        ("listen(), MemoryCursorStore", memory),
        ("send_message per answer", sends),
        ("reply() per answer", replies),
    ):
        print(f"{name:30} {statistics.median(values) * 1000:7.2f} ms/message")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
