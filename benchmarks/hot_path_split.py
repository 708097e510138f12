"""What did splitting the hot paths cost?  ``python -m benchmarks.hot_path_split [ROUNDS]``.

``_Engine._work`` (one bulk worker) and ``Pipeline.attempt`` (one HTTP attempt) were
each one long function, kept so on the grounds that every coroutine layer is re-entered
when aiohttp resumes a send.  Both were split (issue 22: no function over 60 lines).
This measures the CPU each costs per call, the version at ``BEFORE`` (loaded from git)
against the working tree's, in alternating rounds in one process, with nothing else in
the way: ``attempt`` over a session that answers at once (one suspension, as the wire
has), the engine (``send_all``'s) over a deliver that yields once and succeeds.  CPU
time, not wall time: a shared machine blurs it less.  Compare the difference with a
whole message's CPU in the unthrottled benchmark (about 300 us on the 2-core machine).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import types
from typing import Any

import opentrain_async._bulk_engine as engine
import opentrain_async._pipeline as pipeline
from opentrain_async import OpenTrainClient, RetryPolicy
from opentrain_async._bulk import run_batch

BEFORE = "af64b04"
"""The commit before the split."""
CALLS = 20_000
BODY = b'{"ok":true,"message":{"id":"m1"}}'


def _load_before(module: str, path: str) -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:{path}"],  # noqa: S607 - git from PATH, as make does
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    loaded = types.ModuleType(module)
    loaded.__package__ = "opentrain_async"
    sys.modules[module] = loaded
    exec(compile(source, path, "exec"), loaded.__dict__)  # noqa: S102 - our own history
    return loaded


class _Content:
    async def readany(self) -> bytes:
        return BODY

    def at_eof(self) -> bool:
        return True


class _Response:
    status = 201
    headers: dict[str, str] = {}  # noqa: RUF012 - read only
    content = _Content()

    def release(self) -> None:
        pass


class _Session:
    closed = False

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def request(self, *args: Any, **kwargs: Any) -> _Response:
        await asyncio.sleep(0)  # one suspension, as the wire has
        return _Response()


async def _attempts(n: int) -> float:
    """Microseconds of CPU per ``attempt``."""
    client = OpenTrainClient("tok", "http://127.0.0.1:9", pacing_url="")
    wired = client._pipeline
    wired._session = _Session()  # type: ignore[assignment]
    started = time.process_time()
    for _ in range(n):
        await wired.attempt("POST", "/messages", None, b"{}")
    return (time.process_time() - started) / n * 1e6


async def _engine(n: int) -> float:
    """Microseconds of CPU per input of ``send_all``'s engine."""

    async def deliver(*args: Any) -> tuple[Any, bool]:
        await asyncio.sleep(0)
        return object(), False

    items = [(f"conv_{i % 50:04d}", f"m{i}") for i in range(n)]
    started = time.process_time()
    report = await run_batch(
        deliver, items, policy=RetryPolicy(), concurrency=16, reconcile=True, on_outcome=None
    )
    assert report.sent == n, report
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    old_engine = _load_before(
        "opentrain_async._before_bulk_engine", "opentrain_async/_bulk_engine.py"
    )
    old_engine._END = engine._END  # the markers the unchanged methods hand back
    old_engine._SinkFailed = engine._SinkFailed
    old_pipeline = _load_before("opentrain_async._before_pipeline", "opentrain_async/_pipeline.py")
    versions = {
        "before": (old_engine._Engine._work, old_pipeline.Pipeline.attempt),
        "after": (engine._Engine._work, pipeline.Pipeline.attempt),
    }
    results: dict[str, dict[str, list[float]]] = {
        "attempt": {"before": [], "after": []},
        "engine": {"before": [], "after": []},
    }
    for round_no in range(rounds):
        for name in ("before", "after") if round_no % 2 == 0 else ("after", "before"):
            engine._Engine._work, pipeline.Pipeline.attempt = versions[name]  # type: ignore[method-assign]
            results["attempt"][name].append(asyncio.run(_attempts(CALLS)))
            results["engine"][name].append(asyncio.run(_engine(CALLS)))
    engine._Engine._work, pipeline.Pipeline.attempt = versions["after"]  # type: ignore[method-assign]
    print(f"{rounds} rounds x {CALLS:,} calls, CPU microseconds per call")
    for path, runs in results.items():
        added = [a - b for a, b in zip(runs["after"], runs["before"], strict=True)]
        print(
            f"{path:<8} before {statistics.median(runs['before']):6.2f}  after "
            f"{statistics.median(runs['after']):6.2f}  added per round: median "
            f"{statistics.median(added):+.2f} (min {min(added):+.2f}, max {max(added):+.2f})"
        )


if __name__ == "__main__":
    main()
