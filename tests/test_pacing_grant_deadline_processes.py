"""A process stopped (SIGSTOP) while holding window grants not yet sent, resumed windows
later while another process is using them: real processes on one real redis-server and
one fake server over loopback.

The victim is an SDK process with more sending tasks than connection slots (40 tasks,
``max_concurrency=4``, each send 0.25 s at the server), as a service that gathers many
sends: most of its share of a window waits for a slot, granted.  Stopped, then resumed
while the other process sends the window's W, those grants must not go: they expired
(``Pacer.expired``), are paced again, and every message gets exactly one outcome.
The window it resumes in saw 65-72 sends of 40 before grants expired, 40-42 in 10 runs
after; not asserted, because later windows, once the victim's unused share made W
smaller than the server's, can still see the allowance doubled past it (47-72 in a
window of 40, before this change too; benchmarks/pacing-experiments.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import OpenTrainClient
from opentrain_async._pacing.redis_backend import pacing_key
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT, cli_env, start_cli, write_jsonl
from .redis_server import RedisServer
from .test_pacing_shared_window_processes import (
    MESSAGES,
    WINDOW,
    _CountedWindow,
    _seed,
    window_server,  # noqa: F401  (the fixture)
)

VICTIM_MESSAGES = 120
STOPPED = 2.5 * WINDOW  # the victim stays stopped across a reset or two

# The victim: 40 sending tasks over 4 connection slots, one outcome per line printed.
VICTIM = """
import asyncio, json, pathlib, sys
from opentrain_async import OpenTrainClient

async def main() -> None:
    items = [tuple(line) for line in json.loads(pathlib.Path(sys.argv[1]).read_text())]
    async with OpenTrainClient(max_concurrency=4, pacing_url=sys.argv[2]) as client:
        report = await client.send_all(items, concurrency=40)
    print(json.dumps({"sent": report.sent, "failed": len(report.failures)}))

asyncio.run(main())
"""


async def _victim(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path
) -> asyncio.subprocess.Process:
    conversations = [server.add_conversation() for _ in range(VICTIM_MESSAGES)]
    items = tmp_path / "victim.json"
    items.write_text(json.dumps([[c, f"victim {i}"] for i, c in enumerate(conversations)]))
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        VICTIM,
        str(items),
        redis_server.url + "?budget=5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(server, tmp_path),
        cwd=ROOT,
    )


async def _other(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path
) -> asyncio.subprocess.Process:
    conversations = [server.add_conversation() for _ in range(3 * MESSAGES)]
    job = write_jsonl(
        tmp_path / "other.jsonl",
        [{"conversationId": c, "content": f"other {i}"} for i, c in enumerate(conversations)],
    )
    url = redis_server.url + "?budget=5"
    return await start_cli(
        "bulk", str(job), "--json", "--pacing-url", url, env=cli_env(server, tmp_path)
    )


async def _victim_holds_grants(
    server: FakeOpenTrain, victim: asyncio.subprocess.Process, deadline: float
) -> None:
    """Wait (polling, with a deadline) until the victim has sent, then has four sends at
    the server: its slots are full, and the rest of its share of a window waits, granted."""

    def victim_sent() -> bool:
        return any(
            str((r.json or {}).get("content", "")).startswith("victim") for r in server.sends
        )

    while not victim_sent() or server.in_flight < 4:  # (the victim alone sends yet)
        if victim.returncode is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                victim.kill()
            _, err = await victim.communicate()
            raise AssertionError(f"the victim never filled its slots: {err.decode()}")
        await asyncio.sleep(0.002)


@pytest.mark.process
async def test_a_process_stopped_holding_grants_sends_each_message_once(
    window_server: tuple[FakeOpenTrain, _CountedWindow],  # noqa: F811  (the fixture)
    redis_server: RedisServer,
    redis: redis_asyncio.Redis,
    tmp_path: Path,
) -> None:
    """SIGSTOP while the victim holds grants, the other sends the windows meanwhile,
    SIGCONT while it still does: the victim's expired grants are paced again, and both
    finish with every message sent once.  (How many the windows around the resume
    see is printed, not asserted: 40-42 in the window it resumes in over 10 runs, 65-72
    before grants expired, and the next window can still see the allowance doubled past
    W once the victim's unused share made W small: benchmarks/pacing-experiments.md.)"""
    server, limit = window_server
    async with OpenTrainClient(server.token, server.base_url) as client:
        key = pacing_key(client.api_root, server.token)
    await _seed(redis, limit, key)
    victim = await _victim(server, redis_server, tmp_path)
    await _victim_holds_grants(server, victim, time.monotonic() + 60)
    victim.send_signal(signal.SIGSTOP)
    other = await _other(server, redis_server, tmp_path)
    await asyncio.sleep(STOPPED)  # the process stays stopped this long (not a settle)
    victim.send_signal(signal.SIGCONT)
    resumed_at = time.monotonic()
    out, err = await asyncio.wait_for(victim.communicate(), 120)
    assert victim.returncode == 0, err.decode()
    assert json.loads(out) == {"sent": VICTIM_MESSAGES, "failed": 0}
    out, err = await asyncio.wait_for(other.communicate(), 120)
    assert other.returncode == 0, err.decode()
    resumed = math.floor((resumed_at - limit.origin[0]) / WINDOW)
    seen = limit.per_window()
    print("windows from the resume:", [seen.get(i) for i in range(resumed, resumed + 3)])
    sends = [str(r.json["content"]) for r in server.sends if r.status == 201]
    assert len(sends) == len(set(sends)) == VICTIM_MESSAGES + 3 * MESSAGES
