"""Read the pacing timelines ``python -m benchmarks.processes --trace DIR`` wrote.

One line per ``--step`` seconds across all processes: successes and 429s (by when the
request was admitted), reservations and slots granted, the learned rate, cuts; then
every 429 report in order (process, admitted at, hint, limit and cuts after it).

    python -m benchmarks.trace DIR/4-processes--bucket-200-s--exact-hints-redis-r0
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any


def load(directory: Path) -> dict[str, list[list[Any]]]:
    """Every process's events, by process name."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("p*.json"))}


def summarize(traces: dict[str, list[list[Any]]], step: float, reports: bool) -> None:
    start = min(e[1] for events in traces.values() for e in events)
    rows: dict[int, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for events in traces.values():
        for e in events:
            if e[0] == "S":
                rows[int((e[2] - start) / step)]["ok"] += 1
            elif e[0] == "T":
                at = e[3] if e[3] is not None else e[1]
                rows[int((at - start) / step)]["429"] += 1
            elif e[0] == "R":
                row = rows[int((e[1] - start) / step)]
                row["reserves"] += 1
                row["slots"] += e[5]
                if e[6] is not None:
                    row["rate"] = max(row["rate"], e[6])
                row["cuts"] = max(row["cuts"], e[7])
                row["rtt_ms"] = max(row["rtt_ms"], (e[2] - e[1]) * 1000)
    print(
        f"{'t':>6} {'ok':>4} {'429':>4} {'res':>4} {'slots':>5} {'rate':>7} {'cuts':>4} {'rtt':>6}"
    )
    for i in range(max(rows) + 1):
        r = rows[i]
        print(
            f"{i * step:6.2f} {r['ok']:4d} {r['429']:4d} {r['reserves']:4d} {r['slots']:5d} "
            f"{r['rate']:7.1f} {r['cuts']:4d} {r['rtt_ms']:6.1f}"
        )
    total_ok = sum(r["ok"] for r in rows.values())
    total_429 = sum(r["429"] for r in rows.values())
    print(f"ok {total_ok}, 429 {total_429}")
    if reports:
        print("\n429 reports: t(report) proc admitted hint limit cuts searching pause_left cut_at")
        merged = sorted(
            (e[1], name, e) for name, events in traces.items() for e in events if e[0] == "T"
        )
        for t, name, e in merged:
            admitted = "?" if e[3] is None else f"{e[3] - start:.3f}"
            cut_at = f"{e[11] - start:.3f}" if len(e) > 11 else ""
            limit = "-" if e[6] is None else f"{e[6]:.1f}"
            print(
                f"{t - start:7.3f} {name:>4} {admitted:>7} {e[4]!s:>8} {limit:>7} {e[7]:3d} "
                f"{e[8]!s:>5} {max(0.0, e[9] - e[2]):.3f} {cut_at}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.trace")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--reports", action="store_true", help="list every 429 report")
    args = parser.parse_args()
    summarize(load(args.directory), args.step, args.reports)


if __name__ == "__main__":
    main()
