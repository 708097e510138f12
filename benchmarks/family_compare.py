"""Compare saved ``family_run`` results on the same seeds (say, before and after a change).

    python -m benchmarks.family_compare before.json after.json

Prints each file's runners (median, p90, worst ratio to the strict ideal, 429 share,
lost, duplicated), then, for every file's ``opentrain_async`` rows, the draws where the
``aiohttp-retry`` row of any file (the same seed) was faster or drew no more 429s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .family_run import summary


def main(argv: list[str] | None = None) -> None:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    runs = [(p.name, json.loads(p.read_text())) for p in paths]
    peers: dict[int, dict[str, Any]] = {}
    for name, data in runs:
        loads = data.get("loads") or [0.0]
        print(f"{name}: seed {data['seed']}, load (1 min) {min(loads):.1f}-{max(loads):.1f}")
        for runner in sorted({r["runner"] for r in data["rows"]}):
            rows = [r for r in data["rows"] if r["runner"] == runner]
            print(f"  {runner:<16} {len(rows)} draws  {summary(rows)}")
        peers.update({r["seed"]: r for r in data["rows"] if r["runner"] == "aiohttp-retry"})
    for name, data in runs:
        ours = [r for r in data["rows"] if r["runner"] == "opentrain_async"]
        paired = [(o, peers[o["seed"]]) for o in ours if o["seed"] in peers]
        slower = sum(o["seconds"] > p["seconds"] for o, p in paired)
        more = sum(o["rate_limited"] >= max(p["rate_limited"], 1) for o, p in paired)
        print(
            f"{name}: of {len(paired)} draws, aiohttp-retry was faster on {slower}; "
            f"this SDK drew as many 429s or more on {more}"
        )


if __name__ == "__main__":
    main()
