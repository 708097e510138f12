"""Which ``max_concurrency`` should be the default?  ``python -m benchmarks.concurrency``.

Sends the same batch through ``OpenTrainClient.send_all`` with only ``max_concurrency``
changing, against the fake server in its own process with a per-request latency (a real
API is not on loopback), unthrottled and behind the rate limits of ``make bench``.  The
values run interleaved, round after round; the table shows each one's median time and
its worst 429s, losses and duplicates, so the choice weighs speed against the load put
on a server that limits.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

import attrs

from opentrain_async import OpenTrainClient

from ._server import fake_server

CONVERSATIONS = 50


@attrs.frozen
class Case:
    name: str
    n: int
    server_args: tuple[str, ...]


CASES = [
    Case("unthrottled, 100 ms latency", 2000, ("--latency", "0.1")),
    Case("unthrottled, 20 ms latency", 4000, ("--latency", "0.02")),
    Case(
        "bucket 200/s, 100 ms latency", 1000, ("--latency", "0.1", "--rate", "200", "--burst", "10")
    ),
    Case(
        "window 100/1s, 20 ms latency",
        500,
        ("--latency", "0.02", "--window-limit", "100", "--window", "1"),
    ),
]


async def _send(base_url: str, token: str, n: int, concurrency: int) -> int:
    items = [(f"conv_{i % CONVERSATIONS + 1:04d}", f"message {i}") for i in range(n)]
    async with OpenTrainClient(token, base_url, max_concurrency=concurrency) as client:
        report = await client.send_all(items)
    return report.sent


def run(case: Case, concurrency: int) -> dict[str, Any]:
    args = ("--conversations", str(CONVERSATIONS), "--seed", "7", *case.server_args)
    with fake_server(args) as server:
        started = time.perf_counter()
        sent = asyncio.run(_send(server.base_url, server.token, case.n, concurrency))
        elapsed = time.perf_counter() - started
        stats = server.stats()
    return {
        "seconds": elapsed,
        "sent": sent,
        "rate_limited": stats["rate_limited"],
        "lost": case.n - stats["distinct"],
        "duplicated": stats["committed"] - stats["distinct"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", default="8,16,32,64", help="max_concurrency values")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    values = [int(v) for v in args.values.split(",")]
    header = f"{'case':<30} {'max_conc':>8} {'median s':>9} {'msg/s':>7} {'429s':>5}"
    print(f"{header} {'lost':>5} {'dup':>4}")
    for case in CASES:
        runs: dict[int, list[dict[str, Any]]] = {v: [] for v in values}
        for round_no in range(args.rounds):
            for value in values:
                row = run(case, value)
                runs[value].append(row)
                print(
                    f"  {case.name} / {value} (round {round_no + 1}): {row['seconds']:.2f}s",
                    file=sys.stderr,
                )
        for value in values:
            rows = runs[value]
            median = statistics.median(r["seconds"] for r in rows)
            print(
                f"{case.name:<30} {value:>8} {median:>9.2f} {case.n / median:>7.0f} "
                f"{max(r['rate_limited'] for r in rows):>5} {max(r['lost'] for r in rows):>5} "
                f"{max(r['duplicated'] for r in rows):>4}",
                flush=True,
            )


if __name__ == "__main__":
    main()
