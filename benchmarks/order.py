"""What does order within a conversation cost?  ``python -m benchmarks.order``.

The same batch through ``send_all`` with ``ordered=True`` (the default) and
``ordered=False``, at the same limit: the fake server in its own process behind a token
bucket, with a per-request latency (a real API is not on loopback).  Two shapes: one
part per conversation (order has nothing to wait for: the cost is the chains' upkeep)
and five parts per conversation, written back to back (each part waits for the one
before).  The modes run interleaved, round after round; the table shows each one's
median time, its spread (min-max) and the ordered/unordered ratio of the medians.

``--engine`` measures the chains' own CPU cost instead: 50,000 inputs through the bulk
engine over an in-process ``deliver`` that only yields to the loop (no server, no
limit), so the whole difference is the engine's bookkeeping; its ratio compares the
best rounds (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import attrs

from opentrain_async import OpenTrainClient, RetryPolicy
from opentrain_async._bulk import run_batch
from opentrain_async._models import Message

from ._server import fake_server


@attrs.frozen
class Shape:
    name: str
    conversations: int
    parts: int


_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def shapes(messages: int) -> list[Shape]:
    """One part per conversation, and five, with the same number of messages."""
    return [
        Shape(f"1 part x {messages} conversations", messages, 1),
        Shape(f"5 parts x {messages // 5} conversations", messages // 5, 5),
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


async def _engine_run(shape: Shape, ordered: bool, n: int) -> float:
    per = max(1, n // (shape.conversations * shape.parts))
    items = [
        (f"conv_{c:05d}", f"part {k}")
        for _ in range(per)
        for c in range(shape.conversations)
        for k in range(shape.parts)
    ]
    message = Message(id="m", conversation_id="c", created_at=_EPOCH)

    async def deliver(
        conversation_id: str, content: str, reconcile: bool, gate: object
    ) -> tuple[Message, bool]:
        await asyncio.sleep(0)
        return message, False

    started = time.perf_counter()
    report = await run_batch(
        deliver,
        items,
        policy=RetryPolicy(),
        concurrency=64,
        reconcile=False,
        on_outcome=None,
        ordered=ordered,
    )
    assert report.sent == len(items)
    return time.perf_counter() - started


def engine(rounds: int) -> None:
    """The chains' CPU cost: see the module docstring."""
    print(f"engine only: 50,000 inputs, concurrency 64, {rounds} rounds")
    print(f"{'shape':<30} {'mode':<10} {'best s':>9} {'min-max s':>13} {'ratio':>6}")
    for shape in (
        Shape("1 part x 50000 conversations", 50_000, 1),
        Shape("5 parts x 10000", 10_000, 5),
    ):
        times: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(rounds):
            for ordered in (False, True) if round_ % 2 == 0 else (True, False):
                times[ordered].append(asyncio.run(_engine_run(shape, ordered, 50_000)))
        # CPU cost under other load: the fastest round is the least disturbed one.
        medians = {m: min(times[m]) for m in times}
        for ordered in (False, True):
            ratio = f"{medians[True] / medians[False]:.3f}" if ordered else ""
            print(
                f"{shape.name:<30} {'ordered' if ordered else 'unordered':<10} "
                f"{medians[ordered]:>9.3f} {min(times[ordered]):>6.3f}-{max(times[ordered]):<6.3f} "
                f"{ratio:>6}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", default="200", help="the server's bucket, sends per second")
    parser.add_argument("--latency", default="0.02", help="seconds per request")
    parser.add_argument("--messages", type=int, default=1000, help="messages per run")
    parser.add_argument("--engine", action="store_true", help="the engine's CPU cost only")
    args = parser.parse_args()
    if args.engine:
        engine(args.rounds)
        return
    server_args = ("--latency", args.latency, "--rate", args.rate, "--burst", "10")
    print(f"bucket {args.rate}/s, burst 10, latency {args.latency} s, {args.rounds} rounds")
    print(
        f"{'shape':<30} {'mode':<10} {'median s':>9} {'min-max s':>13} {'429s':>6} "
        f"{'ratio':>6} {'best ratio':>10}"
    )
    for shape in shapes(args.messages):
        results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for ordered in (False, True) if round_ % 2 == 0 else (True, False):
                results[ordered].append(run(shape, ordered, server_args))
        medians = {m: statistics.median(r["seconds"] for r in results[m]) for m in results}
        bests = {m: min(r["seconds"] for r in results[m]) for m in results}
        for ordered in (False, True):
            times = [r["seconds"] for r in results[ordered]]
            sent = {r["sent"] for r in results[ordered]}
            assert sent == {shape.conversations * shape.parts}, sent
            ratio = f"{medians[True] / medians[False]:.3f}" if ordered else ""
            best = f"{bests[True] / bests[False]:.3f}" if ordered else ""
            print(
                f"{shape.name:<30} {'ordered' if ordered else 'unordered':<10} "
                f"{medians[ordered]:>9.3f} {min(times):>6.3f}-{max(times):<6.3f} "
                f"{max(r['rate_limited'] for r in results[ordered]):>6} {ratio:>6} {best:>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()
