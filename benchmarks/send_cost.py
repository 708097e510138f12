"""Instructions per unthrottled message: this SDK against raw aiohttp.

``python -m benchmarks.send_cost [--runners A,B] [--small N] [--large N]``

The unthrottled scenario of ``python -m benchmarks`` in instructions, which the
machine's load does not move: the fake server in its own process, the client under
``valgrind --tool=cachegrind --cache-sim=no`` sending 300 messages to warm up, then
``--small`` or ``--large`` more (50 conversations, 64 in flight, order kept; the
runner ``opentrain_async unordered`` without); the
difference of the two runs over ``large - small`` is one message's cost.  ``--profile``
instead runs the client once under cProfile (sorted by own time) to find the hot
functions.  ``--client RUNNER N`` is the client side alone (what valgrind runs).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile

from opentrain_async import OpenTrainClient

from ._server import fake_server
from .runners import RUNNERS, Items

CONVERSATIONS = 50
CONCURRENCY = 64
WARM_UP = 300


async def _unordered(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """This SDK with ``ordered=False``: what keeping order costs, beside the default."""
    async with OpenTrainClient(token, base_url, max_concurrency=concurrency) as client:
        report = await client.send_all(items, ordered=False)
    return report.sent


CLIENTS = {**RUNNERS, "opentrain_async unordered": _unordered}


def _items(n: int, offset: int) -> list[tuple[str, str]]:
    return [
        (f"conv_{i % CONVERSATIONS + 1:04d}", f"unthrottled message {i}")
        for i in range(offset, offset + n)
    ]


def client(runner: str, n: int, base_url: str, token: str) -> None:
    """Warm up, then send ``n`` messages with ``runner`` (what valgrind measures)."""
    send = CLIENTS[runner]
    asyncio.run(send(base_url, token, _items(WARM_UP, 0), CONCURRENCY))
    sent = asyncio.run(send(base_url, token, _items(n, WARM_UP), CONCURRENCY))
    if sent != n:
        raise SystemExit(f"{runner}: {sent} of {n} sent")


def _instructions(runner: str, n: int) -> int:
    args = ("--conversations", str(CONVERSATIONS), "--seed", "7")
    with fake_server(args) as server, tempfile.NamedTemporaryFile() as out:
        run = subprocess.run(
            [  # noqa: S607 - valgrind from PATH
                "valgrind",
                "--tool=cachegrind",
                "--cache-sim=no",
                f"--cachegrind-out-file={out.name}",
                sys.executable,
                "-m",
                "benchmarks.send_cost",
                "--client",
                runner,
                str(n),
                server.base_url,
                server.token,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if found is None:
        raise RuntimeError(run.stderr[-2000:])
    return int(found.group(1).replace(",", ""))


def _profile(runner: str, n: int) -> None:
    import cProfile
    import pstats

    args = ("--conversations", str(CONVERSATIONS), "--seed", "7")
    with fake_server(args) as server:
        send = CLIENTS[runner]
        asyncio.run(send(server.base_url, server.token, _items(WARM_UP, 0), CONCURRENCY))
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(send(server.base_url, server.token, _items(n, WARM_UP), CONCURRENCY))
        profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(45)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", default="opentrain_async,raw aiohttp")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=3000)
    parser.add_argument("--profile", action="store_true", help="cProfile, --large messages")
    options = parser.parse_args()
    names = options.runners.split(",")
    if options.profile:
        _profile(names[0], options.large)
        return
    per_message = {}
    for name in names:
        small = _instructions(name, options.small)
        large = _instructions(name, options.large)
        per_message[name] = (large - small) / (options.large - options.small)
        print(f"{name}: {small:,} / {large:,} instructions, {per_message[name]:,.0f} per message")
    if len(names) == 2:
        first, second = (per_message[name] for name in names)
        print(f"{names[1]} / {names[0]} instructions per message: {second / first:.3f}")


if __name__ == "__main__":
    main()
