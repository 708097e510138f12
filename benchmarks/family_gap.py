"""Per draw, the simulator beside a saved real run: where the real stack reads worse.

Reads a ``benchmarks.family_run`` JSON, rebuilds each draw from its seed (checking that
it is the very draw the real run served: same parameters, same n), runs it in
``benchmarks.family_sim`` and prints, per draw, the real and simulated ratio and 429s,
sorted by how much worse the real stack read; then both summaries, and by part of the
family (kind, hints, processes, latency).

    python -m benchmarks.family_gap benchmarks/results/family-run-2026-12-06-shared.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any

from .family import Draw, draw
from .family_sim import _pct, run_draw


def rebuild(saved: dict[str, Any], max_window: float) -> Draw:
    """The draw of ``saved`` (a row's ``draw``), from its seed; raises if they differ.
    Its process count is the saved one: ``family_run --processes 16`` sets it for every
    draw, as ``family_sim --processes`` does, leaving the rest as the seed has it."""
    d = draw(saved["seed"], max_window=max_window, processes=saved["processes"])
    fields = {k: (list(map(list, v)) if k == "changes" else v) for k, v in d.to_dict().items()}
    wanted = dict(saved, changes=[list(c) for c in saved["changes"]])
    if fields != wanted:
        raise ValueError(f"seed {saved['seed']}: the drawn parameters differ from the saved")
    return d


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_gap")
    parser.add_argument("json", type=Path)
    parser.add_argument("--max-window", type=float, default=2.0, help="as the run's")
    args = parser.parse_args(argv)
    rows = [
        r for r in json.loads(args.json.read_text())["rows"] if r["runner"] == "opentrain_async"
    ]
    pairs = []
    for row in rows:
        d = rebuild(row["draw"], args.max_window)
        pairs.append((row, run_draw(d), d))
    pairs.sort(key=lambda p: -(p[0]["ratio"] - p[1].ratio))
    print(f"{'real':>7} {'sim':>6} {'429 real':>8} {'sim':>5}  draw")
    for row, sim, d in pairs:
        print(
            f"{row['ratio']:6.2f}x {sim.ratio:5.2f}x {row['rate_limited']:8d} {sim.throttled:5d}"
            f"  {d.describe()}"
        )
    groups: dict[str, list[tuple[float, float]]] = {"all": []}
    for row, sim, d in pairs:
        for label in ["all", *d.parts()]:
            groups.setdefault(label, []).append((row["ratio"], sim.ratio))
    print(f"\n{'part':<18} {'n':>3}  real median/p90    sim median/p90   mean abs log(real/sim)")
    for label, values in sorted(groups.items()):
        real = [v[0] for v in values]
        sim_ = [v[1] for v in values]
        print(
            f"{label:<18} {len(values):3d}  {statistics.median(real):5.2f}x {_pct(real, 0.9):5.2f}x"
            f"      {statistics.median(sim_):5.2f}x {_pct(sim_, 0.9):5.2f}x"
            f"   {statistics.mean(abs(math.log(r / s)) for r, s in values):.3f}"
        )


if __name__ == "__main__":
    main()
