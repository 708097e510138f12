"""Print the README's results table from ``benchmarks/results/latest.json``.

``python -m benchmarks.table`` after ``make bench``: the README carries exactly what the
last run printed, so its table is pasted from here rather than typed by hand.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from .__main__ import RESULTS

SCENARIO_LABELS = {
    "unthrottled": "unthrottled, 10,000 msgs over 50 conversations",
    "unthrottled, one per conversation": "unthrottled, 10,000 msgs, one per conversation",
    "bucket 500/s exact hints": "token bucket 500/s burst 10, exact hints, 1,500 msgs",
    "bucket 200/s integer hints": "token bucket 200/s burst 10, integer hints, 1,000 msgs",
    "fixed window 100/1s": "fixed window 100 per 1 s, 500 msgs",
    "faults after commit 25%": "connection reset after commit on 25% of sends, 1,000 msgs",
}
RUNNER_LABELS = {"official SDK": "official SDK (httpx)"}
OURS = "opentrain_async"


def _cell(value: str, bold: bool) -> str:
    return f"**{value}**" if bold else value


def table(data: dict[str, Any]) -> str:
    """The markdown table for one results file."""
    lines = [
        "| scenario | runner | time s | ratio | msg/s | 429s | lost | dup | unknown |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    previous = None
    for row in data["rows"]:
        if row["scenario"].startswith("regime: "):
            continue  # in the regimes table
        ours = row["runner"] == OURS
        scenario = row["scenario"]
        unthrottled = scenario.startswith("unthrottled")  # a ratio to raw aiohttp
        label = SCENARIO_LABELS.get(scenario, scenario) if scenario != previous else ""
        previous = scenario
        lossy = row["lost"] > 0
        rate_limited = row["ideal_seconds"] is not None
        ratio = row.get("ratio")
        if ratio is None or lossy or (not rate_limited and not unthrottled):
            ratio_text = "-"
        else:
            ratio_text = f"{ratio:.2f}x"
        throughput = "-" if lossy and rate_limited else f"{row['throughput']:,.0f}"
        unknown = row["n"] - row["lost"] - row["reported_ok"]
        runner = RUNNER_LABELS.get(row["runner"], row["runner"])
        cells = [
            label,
            _cell(runner, ours),
            f"{row['seconds']:.2f}" + ("!" if row["timed_out"] else ""),
            _cell(ratio_text, ours and ratio_text != "-"),
            throughput,
            _cell(f"{row['rate_limited']:,}", ours and not unthrottled),
            _cell(f"{row['lost']:,}", ours and not unthrottled),
            _cell(f"{row['duplicated']:,}", ours and not unthrottled),
            _cell(f"{unknown:,}", ours and not unthrottled),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def regimes_table(data: dict[str, Any]) -> str:
    """The markdown table of the issue-12 regimes: each over repeated runs, with spread."""
    lines = [
        "| regime | msgs | runs | ratio median | ratio range | slowest / median "
        "| 429s (worst run) | lost | dup |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in data["rows"]:
        if not row["scenario"].startswith("regime: ") or not row["ideal_seconds"]:
            continue
        runs = row.get("seconds_all", [row["seconds"]])
        ratios = sorted(t / row["ideal_seconds"] for t in runs)
        median = statistics.median(ratios)
        worst = max(row.get("rate_limited_all", [row["rate_limited"]]))
        lines.append(
            f"| {row['scenario'].removeprefix('regime: ')} | {row['n']:,} | {len(runs)} "
            f"| {median:.2f}x | {ratios[0]:.2f}-{ratios[-1]:.2f}x | {ratios[-1] / median:.2f} "
            f"| {worst:,} ({worst / row['n']:.1%}) | {row['lost']:,} | {row['duplicated']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    data = json.loads(path.read_text())
    print(f"machine: {data['machine']}\n")
    print(table(data))
    if any(row["scenario"].startswith("regime: ") for row in data["rows"]):
        print()
        print(regimes_table(data))
    for row in data["rows"]:
        if row.get("seconds_all"):
            runs = ", ".join(f"{t:.2f}" for t in row["seconds_all"])
            cpu = ", ".join(f"{t:.0f}" for t in row.get("client_cpu_us_all", []))
            print(
                f"\n{row['scenario']} / {row['runner']}: median of {runs} s; "
                f"client CPU per message {cpu} µs",
                end="",
            )
    print()


if __name__ == "__main__":
    main()
