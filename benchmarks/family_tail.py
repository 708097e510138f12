"""How much of each draw's gap is the job's tail: the time after most messages are in.

A job's ratio is its last delivery over the strict ideal, so the last messages weigh
as much as all the others: a tail of one extra second on a 3 s job is 1.33x.  This runs
the family (as ``benchmarks.family_sim``) with the limiter's answers recorded, reads
each message's delivery time (the limiter's admission: the simulated server answers at
once), and splits each runner's time at the moment ``--share`` (0.95) of the messages
were delivered: the tail is what comes after.  The ideal's own tail comes from the same
admission times ``Draw.ideal`` uses.

Printed per runner: median and p90 of the ratio, of the tail over the ideal's, and of
the ratio with the tail cut to the ideal's (``t_share + ideal tail``): the part of the
median/p90 gap the tail explains; then the same by hint style and kind.

    python -m benchmarks.family_tail --draws 300 --first 3000 --max-window 2
    python -m benchmarks.family_tail --draws 300 --first 3000 --runners opentrain_async
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
from typing import Any

import attrs

from .family import Draw, admission_times, draw
from .family_sim import Result, _pct, run_draw
from .family_timeline import _Recording

__all__ = ["Tail", "tail"]


@attrs.frozen
class Tail:
    """One draw, one runner: its result and the seconds before and after the share."""

    result: Result
    at_share: float
    """Seconds from the start to the delivery that brought the share in."""
    ideal_at_share: float
    """The same for the strict ideal."""

    @property
    def tail(self) -> float:
        return self.result.seconds - self.at_share

    @property
    def ideal_tail(self) -> float:
        return self.result.ideal - self.ideal_at_share

    @property
    def cut(self) -> float:
        """The ratio had the tail lasted no longer than the ideal's."""
        return (self.at_share + min(self.tail, self.ideal_tail)) / self.result.ideal


def tail(d: Draw, runner: str = "opentrain_async", share: float = 0.95) -> Tail:
    """Run ``d`` with ``runner``; split its time where ``share`` of the messages were in."""
    limiters: list[_Recording] = []

    def factory(*args: Any) -> _Recording:
        limiters.append(_Recording(*args))
        return limiters[-1]

    result = run_draw(d, runner, limiter_factory=factory)
    delivered = sorted(at for at, wait in limiters[0].answers if wait is None)
    k = max(1, math.ceil(share * d.n))
    at_share = delivered[min(k, len(delivered)) - 1]
    ideal_at = admission_times(d.schedule(), k)[-1] + d.latency
    return Tail(result, at_share, min(ideal_at, result.ideal))


def _line(tails: list[Tail]) -> str:
    ratios = [t.result.ratio for t in tails]
    cut = [t.cut for t in tails]
    extra = [(t.tail - t.ideal_tail) / t.result.ideal for t in tails]

    def part(q: float) -> str:
        r, c = (
            (statistics.median(ratios), statistics.median(cut))
            if q == 0.5
            else (
                _pct(ratios, q),
                _pct(cut, q),
            )
        )
        explained = (r - c) / (r - 1) if r > 1 else 0.0
        return f"{r:5.2f}x -> {c:5.2f}x ({explained:4.0%} of the gap)"

    return (
        f"{len(tails):>4}  median {part(0.5)}  p90 {part(0.9)}  "
        f"extra tail / ideal median {statistics.median(extra):5.2f} p90 {_pct(extra, 0.9):5.2f}"
    )


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_tail")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--first", type=int, default=3000, help="first seed (tune: 0-9999)")
    parser.add_argument("--runners", default="opentrain_async,oracle")
    parser.add_argument("--share", type=float, default=0.95, help="where the tail begins")
    parser.add_argument("--max-window", type=float, default=60.0, help="family_run: 2")
    args = parser.parse_args(argv)
    draws = [
        draw(s, max_window=args.max_window) for s in range(args.first, args.first + args.draws)
    ]
    print(
        f"{len(draws)} draws, seeds {args.first}..{args.first + args.draws - 1}, tail after "
        f"{args.share:.0%} delivered; ratio -> ratio with the tail cut to the ideal's"
    )
    for runner in args.runners.split(","):
        tails = [tail(d, runner, args.share) for d in draws]
        print(f"\n{runner}: all {_line(tails)}")
        groups: dict[str, list[Tail]] = {}
        for t in tails:
            groups.setdefault(f"hints {t.result.draw.hints}", []).append(t)
            groups.setdefault(f"kind {t.result.draw.kind}", []).append(t)
        for label, ts in sorted(groups.items()):
            print(f"  {label:<14} {_line(ts)}", flush=True)


if __name__ == "__main__":
    main()
