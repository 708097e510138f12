"""One shared draw in the simulator, printed as ``benchmarks.trace`` prints a real run's.

``family_run --trace DIR`` records each real process's reservations, 429 reports and
successes (``benchmarks.processes._trace``); this records the same events of a draw run
by ``benchmarks.family_sim`` (virtual time, all pacers of the draw as one) and prints
them with ``benchmarks.trace.summarize``: successes and 429s by send time, reservations,
slots, the rate reserved at, cuts and the backend's round trip per step, so the two
timelines can be set side by side (branch ``simgap``: seed 93934376).

    python -m benchmarks.family_simtrace 93934376 --processes 16 --max-window 2
    python -m benchmarks.family_run --seed 93934376 --draws 1 --processes 16 \\
        --runners opentrain_async --trace /tmp/t && python -m benchmarks.trace /tmp/t/93934376
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from opentrain_async import Pacer

from . import pacing_sim
from .family import draw
from .family_sim import Result, run_draw
from .trace import summarize

__all__ = ["simtrace"]


def simtrace(seed: int, max_window: float, processes: int | None) -> tuple[Result, list[list[Any]]]:
    """Run the draw with the shared backend and ``Pacer.on_success`` wrapped; its result
    and the events, as ``processes._trace`` writes them (times on the virtual clock)."""
    events: list[list[Any]] = []
    backend = pacing_sim._SharedBackend
    reserve, report, on_success = backend.reserve, backend.report, Pacer.on_success

    def now() -> float:
        return asyncio.get_running_loop().time()

    async def traced_reserve(self: Any, count: int, **kw: Any) -> Any:
        t0 = now()
        r = await reserve(self, count, **kw)
        events.append(
            ["R", t0, now(), count, kw.get("successes", 0), r.count, r.rate, r.cuts,
             r.pause_until - r.now, r.first - r.now]
        )  # fmt: skip
        return r

    async def traced_report(self: Any, feedback: Any, **kw: Any) -> Any:
        t0 = now()
        s = await report(self, feedback, **kw)
        events.append(
            ["T", t0, now(), feedback.throttled_at, feedback.retry_after, feedback.successes,
             s.limit, s.cuts, s.searching, s.pause_until, s.throttles, s.cut_at, 0]
        )  # fmt: skip
        return s

    def traced_success(self: Pacer, sent_at: float) -> None:
        events.append(["S", now(), sent_at])
        on_success(self, sent_at)

    backend.reserve, backend.report = traced_reserve, traced_report  # type: ignore[method-assign]
    Pacer.on_success = traced_success  # type: ignore[method-assign]
    try:
        result = run_draw(draw(seed, max_window=max_window, processes=processes))
    finally:
        backend.reserve, backend.report = reserve, report  # type: ignore[method-assign]
        Pacer.on_success = on_success  # type: ignore[method-assign]
    return result, events


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_simtrace")
    parser.add_argument("seed", type=int)
    parser.add_argument("--max-window", type=float, default=60.0, help="family_run: 2")
    parser.add_argument("--processes", type=int, help="the draw shared by this many")
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--reports", action="store_true", help="list every 429 report")
    args = parser.parse_args(argv)
    result, events = simtrace(args.seed, args.max_window, args.processes)
    print(result.draw.describe())
    print(f"{result.seconds:.2f} s, ideal {result.ideal:.2f} s, {result.ratio:.2f}x")
    if result.draw.processes == 1:
        print("(one process: its own in-memory state, only successes traced)")
    summarize({"sim": events}, args.step, args.reports)


if __name__ == "__main__":
    main()
