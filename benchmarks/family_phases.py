"""Where in a job this SDK falls behind a client told the limit (the oracle).

``family_tail`` splits each draw once, at 95% delivered; this reads the gap all along:
for each share of the messages (10%, 25%, 50%, 75%, 95%, all), the time this SDK
delivered that share minus the time the oracle did, over the strict ideal.  A gap
already there at 10% is the first contact (slow start, the first 429s, the search); one
that grows between 25% and 75% is the learned rate below the limit (the cuts, the
climb back); one that grows past 75% is the job's late part (retries that wait out a
rounded hint, the tail).  Medians per hint style, with the same filters as
``family_sim``:

    python -m benchmarks.family_phases --draws 300 --first 1000 --max-window 2 --min-burst 4
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
from typing import Any

from .family import Draw, draw
from .family_sim import run_draw
from .family_timeline import _Recording

__all__ = ["SHARES", "gaps"]

SHARES = (0.1, 0.25, 0.5, 0.75, 0.95, 1.0)
"""The shares of the messages at which the gap is read."""


def _deliveries(d: Draw, runner: str) -> tuple[float, list[float]]:
    """(the strict ideal, each admission's time from the first answer, sorted)."""
    limiters: list[_Recording] = []

    def factory(*args: Any) -> _Recording:
        limiters.append(_Recording(*args))
        return limiters[-1]

    result = run_draw(d, runner, limiter_factory=factory)
    answers = limiters[0].answers
    start = answers[0][0] if answers else 0.0
    return result.ideal, sorted(at - start for at, wait in answers if wait is None)


def gaps(d: Draw, runner: str = "opentrain_async", floor: str = "oracle") -> list[float]:
    """``runner``'s delivery time minus ``floor``'s at each of ``SHARES``, over the ideal."""
    ideal, ours = _deliveries(d, runner)
    _, theirs = _deliveries(d, floor)
    out = []
    for share in SHARES:
        k = max(1, math.ceil(share * d.n)) - 1
        out.append((ours[min(k, len(ours) - 1)] - theirs[min(k, len(theirs) - 1)]) / ideal)
    return out


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_phases")
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--first", type=int, default=3000, help="first seed (tune: 0-9999)")
    parser.add_argument("--max-window", type=float, default=60.0, help="family_run: 2")
    parser.add_argument("--kind", help="only draws of this kind (bucket, fixed, sliding)")
    parser.add_argument("--min-burst", type=int, help="only buckets of at least this burst")
    args = parser.parse_args(argv)
    draws = [
        draw(s, max_window=args.max_window) for s in range(args.first, args.first + args.draws)
    ]
    if args.kind:
        draws = [d for d in draws if d.kind == args.kind]
    if args.min_burst:
        draws = [d for d in draws if d.kind == "bucket" and d.burst >= args.min_burst]
    groups: dict[str, list[list[float]]] = {}
    for d in draws:
        row = gaps(d)
        groups.setdefault("all", []).append(row)
        groups.setdefault(f"hints {d.hints}", []).append(row)
    print(
        f"{len(draws)} draws; median (this SDK - oracle) / ideal when this share was in: "
        + "  ".join(f"{share:>6.0%}" for share in SHARES)
    )
    for label, rows in groups.items():
        medians = [statistics.median(r[i] for r in rows) for i in range(len(SHARES))]
        print(f"  {label:<13} {len(rows):4d}  " + "  ".join(f"{m:+6.3f}" for m in medians))


if __name__ == "__main__":
    main()
