"""Peak RSS of this SDK sending n messages from a generator (run in its own process)."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Iterator

from opentrain_async import OpenTrainClient

from ._server import fake_server


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def send(base_url: str, token: str, n: int) -> dict[str, float]:
    def items() -> Iterator[tuple[str, str]]:
        for i in range(n):
            yield f"conv_{i % 50 + 1:04d}", f"memory message {i}"

    samples: list[float] = []
    done = 0
    async with OpenTrainClient(token, base_url, max_concurrency=64) as client:
        async for outcome in client.send_many(items()):
            done += outcome.ok
            if done % 10_000 == 0:
                samples.append(rss_mb())
    return {"sent": done, "rss_first_10k_mb": samples[0] if samples else rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    args = parser.parse_args()
    with fake_server(("--conversations", "50")) as server:
        started = time.perf_counter()
        result = asyncio.run(send(server.base_url, server.token, args.n))
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n": args.n,
                "sent": result["sent"],
                "seconds": round(elapsed, 1),
                "rss_after_10k_mb": round(result["rss_first_10k_mb"], 1),
                "peak_rss_mb": round(peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
