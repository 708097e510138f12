"""Journal throughput: ``bulk`` with a journal against an unthrottled fake server.

``python -m benchmarks.journal [--n 4000] [--rounds 5]`` starts the fake server in its
own process, writes an N-line job, and runs the real CLI (a subprocess) ROUNDS times with
a fresh ``--journal`` each time, interleaved with runs without a journal.  It prints the
effective rate of each run (messages/second, from the CLI's own ``--json`` summary) and
the median ratio of journaled to unjournaled runs with its spread.  ``--baseline DIR``
runs another checkout's CLI journaled in the same rounds, interleaved (so both see the
same machine load), and prints the median ratio of this checkout to it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ._server import fake_server


def _run(job: Path, env: dict[str, str], *extra: str, cwd: str | None = None) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "opentrain_async", "bulk", str(job), "--json", *extra],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bulk run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    rate: float = summary["ratePerSecond"]
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-journal-flag",
        default="--no-journal",
        help="how this checkout's CLI runs without a journal ('' if that is the default)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout (e.g. `git worktree add /tmp/base main`): its CLI runs "
        "journaled in the same rounds, interleaved, and the ratio of the two is printed",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fake_server(("--conversations", "20")) as server:
        work = Path(tmp)
        job = work / "job.jsonl"
        job.write_text(
            "".join(
                json.dumps({"conversationId": f"conv_{i % 20 + 1:04d}", "content": f"m {i}"}) + "\n"
                for i in range(args.n)
            )
        )
        env = dict(os.environ, OT_API_TOKEN=server.token, OT_API_BASE_URL=server.base_url)
        env["XDG_STATE_HOME"] = str(work / "state")
        with_journal: list[float] = []
        without: list[float] = []
        baseline: list[float] = []
        for r in range(args.rounds):
            with_journal.append(_run(job, env, "--journal", str(work / f"j{r}.journal")))
            plain = [args.no_journal_flag] if args.no_journal_flag else []
            without.append(_run(job, env, *plain))
            line = f"round {r + 1}: journal {with_journal[-1]:,.0f} msg/s, none {without[-1]:,.0f}"
            if args.baseline:
                base_env = dict(env, PYTHONPATH=args.baseline)
                journal = str(work / f"b{r}.journal")
                baseline.append(_run(job, base_env, "--journal", journal, cwd=args.baseline))
                line += f", baseline journal {baseline[-1]:,.0f}"
            print(line)
        ratios = sorted(a / b for a, b in zip(with_journal, without, strict=True))
        print(
            f"journaled median {statistics.median(with_journal):,.0f} msg/s "
            f"(min {min(with_journal):,.0f}, max {max(with_journal):,.0f}); "
            f"unjournaled median {statistics.median(without):,.0f} msg/s; "
            f"ratio median {statistics.median(ratios):.2f} "
            f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})"
        )
        if baseline:
            versus = sorted(a / b for a, b in zip(with_journal, baseline, strict=True))
            print(
                f"journaled vs baseline journaled: median {statistics.median(versus):.2f}x "
                f"(range {versus[0]:.2f}-{versus[-1]:.2f}); baseline median "
                f"{statistics.median(baseline):,.0f} msg/s"
            )


if __name__ == "__main__":
    main()
