"""One draw of the family as the server saw it: admissions and 429s per step.

``benchmarks.family_sim --only SEED`` says how long a draw took; this says where the
time went.  The draw runs in virtual time exactly as there (same seed, same runner),
with the limiter's every answer recorded: per ``--step`` seconds from the first send,
requests admitted, requests refused, and the longest wait the limiter asked for (its
exact wait, before the draw's hint style rounds or drops it).

    python -m benchmarks.family_timeline 19              (this SDK, 0.1 s steps)
    python -m benchmarks.family_timeline 19 --step 0.5 --runner aiohttp-retry
    python -m benchmarks.family_timeline 19 --runner oracle     (what knowing the limit gives)
    python -m benchmarks.family_timeline 3 --untuned 0.2,exact  (issue 19's untuned client)
    python -m benchmarks.family_timeline 93934376 --processes 16 --max-window 2
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import attrs

from opentrain_async.testing._limits import _ScheduleLimiter

from .family import Draw, draw
from .family_oracle import ORACLES
from .family_sim import RUNNERS, Result, run_draw, untuned_draw

__all__ = ["Row", "timeline"]


@attrs.define
class Row:
    """One step of the timeline."""

    admitted: int = 0
    refused: int = 0
    longest_wait: float = 0.0


class _Recording(_ScheduleLimiter):
    """The draw's limiter, recording (time, wait) for every request it answers."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.answers: list[tuple[float, float | None]] = []

    def acquire(self, now: float) -> float | None:
        wait = super().acquire(now)
        self.answers.append((now, wait))
        return wait


def timeline(
    seed: int,
    step: float = 0.1,
    runner: str = "opentrain_async",
    max_window: float = 60.0,
    chosen: Draw | None = None,
    processes: int | None = None,
) -> tuple[Result, list[Row]]:
    """Run draw ``seed`` (or ``chosen``) with ``runner``; its result and one ``Row``
    per ``step`` seconds from the first request the limiter answered (``max_window``:
    as ``family_sim --max-window``, 2 for the real benchmark's family; ``processes``: as
    ``family_sim --processes``, the draw shared by that many)."""
    limiters: list[_Recording] = []

    def factory(*args: Any) -> _Recording:
        limiter = _Recording(*args)
        limiters.append(limiter)
        return limiter

    d = chosen or draw(seed, max_window=max_window, processes=processes)
    result = run_draw(d, runner, limiter_factory=factory)
    answers = limiters[0].answers
    rows: list[Row] = []
    start = answers[0][0] if answers else 0.0
    for at, wait in answers:
        index = int((at - start) / step)
        rows.extend(Row() for _ in range(index + 1 - len(rows)))
        row = rows[index]
        if wait is None:
            row.admitted += 1
        else:
            row.refused += 1
            row.longest_wait = max(row.longest_wait, wait)
    return result, rows


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_timeline")
    parser.add_argument("seed", type=int)
    parser.add_argument("--step", type=float, default=0.1, help="seconds per line")
    parser.add_argument("--runner", default="opentrain_async", choices=RUNNERS + ORACLES)
    parser.add_argument(
        "--max-window", type=float, default=60.0, help="longest window (family_run: 2)"
    )
    parser.add_argument(
        "--untuned", metavar="LATENCY,HINTS", help="issue 19's untuned draw, e.g. 0.2,exact"
    )
    parser.add_argument("--as-hints", help="the draw with these hints instead")
    parser.add_argument("--processes", type=int, help="the draw shared by this many")
    args = parser.parse_args(argv)
    chosen = None
    if args.as_hints:
        chosen = attrs.evolve(
            draw(args.seed, max_window=args.max_window, processes=args.processes),
            hints=args.as_hints,
        )
    if args.untuned:
        latency, hints = args.untuned.split(",")
        chosen = untuned_draw(args.seed, float(latency), hints)
    result, rows = timeline(
        args.seed, args.step, args.runner, args.max_window, chosen, args.processes
    )
    print(result.draw.describe())
    print(
        f"{args.runner}: {result.seconds:.2f} s, ideal {result.ideal:.2f} s, "
        f"{result.ratio:.2f}x, {result.throttled} 429s"
    )
    print(f"{'t':>7} {'admitted':>8} {'429':>5} {'longest wait':>12}")
    for i, row in enumerate(rows):
        if row.admitted or row.refused:
            print(
                f"{i * args.step:7.2f} {row.admitted:8d} {row.refused:5d} {row.longest_wait:12.3f}"
            )


if __name__ == "__main__":
    main()
