"""Run a FakeOpenTrain in its own process (used by the benchmarks).

Prints exactly one line, ``READY http://127.0.0.1:PORT TOKEN``, once serving, then
serves until SIGTERM or SIGINT. Requests are not recorded (nobody could read them);
counters are available at ``GET /__fake__/stats`` and ``POST /__fake__/reset-stats``.
Conversations ``conv_0001`` .. ``conv_NNNN`` are created for the default token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from ._limits import FixedWindow, TokenBucket
from ._models import Fault
from ._server import DEFAULT_TOKEN, FakeOpenTrain


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m opentrain_async.testing",
        description="Serve a fake OpenTrain public API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds of simulated work per request"
    )
    parser.add_argument("--conversations", type=int, default=1, metavar="N")
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--rate", type=float, help="token bucket: sends per second")
    limits.add_argument("--window-limit", type=int, help="fixed window: sends per window")
    parser.add_argument("--burst", type=int, default=1, help="token bucket capacity")
    parser.add_argument(
        "--rate-change",
        metavar="SECONDS:RATE",
        help="token bucket: switch to RATE sends per second SECONDS after READY",
    )
    parser.add_argument("--window", type=float, default=1.0, help="fixed window seconds")
    parser.add_argument("--integer-hints", action="store_true", help="whole-second hints")
    parser.add_argument(
        "--retry-after-header", action="store_true", help="also send a Retry-After header"
    )
    parser.add_argument("--fault", choices=[f.value for f in Fault], help="fault to inject")
    parser.add_argument(
        "--fault-rate", type=float, default=None, help="probability per send (default: always)"
    )
    parser.add_argument("--fault-delay", type=float, default=60.0, help="stall seconds")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    """Start the server, announce it, and wait for a termination signal."""
    server = FakeOpenTrain(
        token=args.token,
        host=args.host,
        port=args.port,
        seed=args.seed,
        latency=args.latency,
        record_requests=False,
    )
    for _ in range(args.conversations):
        server.add_conversation()
    if args.rate is not None:
        server.set_rate_limit(
            TokenBucket(
                rate=args.rate,
                burst=args.burst,
                integer_hints=args.integer_hints,
                retry_after_header=args.retry_after_header,
            )
        )
    elif args.window_limit is not None:
        server.set_rate_limit(
            FixedWindow(
                limit=args.window_limit,
                window=args.window,
                integer_hints=args.integer_hints,
                retry_after_header=args.retry_after_header,
            )
        )
    if args.fault is not None:
        server.inject_fault(Fault(args.fault), probability=args.fault_rate, delay=args.fault_delay)

    async def change_rate(at: float, rate: float) -> None:
        """The limit moves mid-run (benchmarks: a drop or a rise)."""
        await asyncio.sleep(at)
        server.set_rate_limit(
            TokenBucket(
                rate=rate,
                burst=args.burst,
                integer_hints=args.integer_hints,
                retry_after_header=args.retry_after_header,
            )
        )

    changes: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt instead
            loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            sys.stdout.write(f"READY {server.base_url} {server.token}\n")
            sys.stdout.flush()
            if args.rate is not None and args.rate_change:
                at, rate = (float(part) for part in args.rate_change.split(":", 1))
                changes.add(asyncio.ensure_future(change_rate(at, rate)))
            await stop.wait()
    finally:
        for task in changes:
            task.cancel()
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until terminated."""
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
