"""What does order within a conversation cost?  ``python -m benchmarks.order``.

The same batch through ``send_all`` with ``ordered=True`` (the default) and
``ordered=False``, at the same limit: the fake server in its own process behind a token
bucket, with a per-request latency (a real API is not on loopback).  Two shapes: one
part per conversation (order has nothing to wait for: the cost is the chains' upkeep)
and five parts per conversation, written back to back (each part waits for the one
before).  The modes run interleaved, round after round; the table shows each one's
median time, its spread (min-max) and the ordered/unordered ratio of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import attrs

from opentrain_async import OpenTrainClient

from ._server import fake_server


@attrs.frozen
class Shape:
    name: str
    conversations: int
    parts: int


SHAPES = [
    Shape("1 part x 1000 conversations", 1000, 1),
    Shape("5 parts x 200 conversations", 200, 5),
]


async def _send(base_url: str, token: str, shape: Shape, ordered: bool) -> int:
    items = [
        (f"conv_{c:04d}", f"part {k} of {shape.parts}")
        for c in range(1, shape.conversations + 1)
        for k in range(1, shape.parts + 1)
    ]
    async with OpenTrainClient(token, base_url) as client:
        report = await client.send_all(items, ordered=ordered)
    return report.sent


def run(shape: Shape, ordered: bool, server_args: tuple[str, ...]) -> dict[str, Any]:
    args = ("--conversations", str(shape.conversations), "--seed", "7", *server_args)
    with fake_server(args) as server:
        started = time.perf_counter()
        sent = asyncio.run(_send(server.base_url, server.token, shape, ordered))
        elapsed = time.perf_counter() - started
        stats = server.stats()
    return {"seconds": elapsed, "sent": sent, "rate_limited": stats["rate_limited"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", default="200", help="the server's bucket, sends per second")
    parser.add_argument("--latency", default="0.02", help="seconds per request")
    args = parser.parse_args()
    server_args = ("--latency", args.latency, "--rate", args.rate, "--burst", "10")
    print(f"bucket {args.rate}/s, burst 10, latency {args.latency} s, {args.rounds} rounds")
    print(f"{'shape':<30} {'mode':<10} {'median s':>9} {'min-max s':>13} {'429s':>6} {'ratio':>6}")
    for shape in SHAPES:
        results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for ordered in (False, True) if round_ % 2 == 0 else (True, False):
                results[ordered].append(run(shape, ordered, server_args))
        medians = {m: statistics.median(r["seconds"] for r in results[m]) for m in results}
        for ordered in (False, True):
            times = [r["seconds"] for r in results[ordered]]
            sent = {r["sent"] for r in results[ordered]}
            assert sent == {shape.conversations * shape.parts}, sent
            ratio = f"{medians[True] / medians[False]:.3f}" if ordered else ""
            print(
                f"{shape.name:<30} {'ordered' if ordered else 'unordered':<10} "
                f"{medians[ordered]:>9.3f} {min(times):>6.3f}-{max(times):<6.3f} "
                f"{max(r['rate_limited'] for r in results[ordered]):>6} {ratio:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
