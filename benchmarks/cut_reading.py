"""What a cut reads as the accepted rate, beside what the server's limiter admitted.

At every episode's cut (``episode.cut_episode``) the pacer reads the accepted rate
since the curve's origin (``samples.accepted_rate``).  This runs steady single-process
token buckets of the simulated family, records each such reading, and divides it by
the limiter's own admissions per second over the same stretch (from the later of the
origin and ``now - span`` to ``now``; a 429's answer comes back at once in the
simulator, so an admission and its success are counted at the same moment) and by the
bucket's rate.  A ratio above 1 is a reading biased high: a cut that lands above the
limit.

    python -m benchmarks.cut_reading --draws 2000 --first 1000 --max-window 2 --min-burst 4
"""

from __future__ import annotations

import argparse
import bisect
import logging
import statistics
from typing import Any

from opentrain_async._pacing import episode

from .family import Draw, draw
from .family_sim import run_draw
from .family_timeline import _Recording

__all__ = ["readings"]


def readings(d: Draw) -> list[tuple[float, float]]:
    """(reading / admitted, reading / rate) for each cut's accepted-rate reading in ``d``."""
    limiters: list[_Recording] = []
    seen: list[tuple[float, float, float, float]] = []  # (now, span, origin, reading)
    original = episode.accepted_rate

    def factory(*args: Any) -> _Recording:
        limiters.append(_Recording(*args))
        return limiters[-1]

    def reading(state: Any, now: float, span: float, since_origin: bool = True) -> Any:
        out = original(state, now, span, since_origin)
        if since_origin:
            seen.append((now, span, state.origin, out[0]))
        return out

    episode.accepted_rate = reading  # type: ignore[assignment]
    try:
        run_draw(d, "opentrain_async", limiter_factory=factory)
    finally:
        episode.accepted_rate = original
    admitted = sorted(at for at, wait in limiters[0].answers if wait is None)
    out = []
    for now, span, origin, value in seen:
        start = max(origin, now - span)
        if now - start < 0.05:
            continue
        count = bisect.bisect_right(admitted, now) - bisect.bisect_left(admitted, start)
        if count:
            out.append((value / (count / (now - start)), value / d.rate))
    return out


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cut_reading")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--first", type=int, default=1000, help="first seed (tune: 0-9999)")
    parser.add_argument("--max-window", type=float, default=2.0)
    parser.add_argument("--min-burst", type=int, default=1)
    args = parser.parse_args(argv)
    seeds = range(args.first, args.first + args.draws)
    draws = [
        d
        for d in (draw(s, max_window=args.max_window) for s in seeds)
        if d.kind == "bucket" and d.processes == 1 and not d.changes and d.burst >= args.min_burst
    ]
    rows = [r for d in draws for r in readings(d)]
    print(f"{len(draws)} steady single-process buckets, {len(rows)} cut readings")
    for i, label in enumerate(("reading / admitted", "reading / rate")):
        values = [r[i] for r in rows]
        print(
            f"  {label:<19} p10 {_pct(values, 0.1):.2f}x  median {statistics.median(values):.2f}x"
            f"  p90 {_pct(values, 0.9):.2f}x"
        )


if __name__ == "__main__":
    main()
