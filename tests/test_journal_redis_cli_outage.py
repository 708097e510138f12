"""The CLI's Redis journal when Redis is killed mid-run: the run says why it stopped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, start_cli, until_committed, write_jsonl
from .redis_server import RedisServer, require_redis_binary


def _records(conv: str, n: int, *, keys: bool = False) -> list[dict[str, str]]:
    return [
        {"conversationId": conv, "content": f"notice {i}", **({"key": f"n-{i}"} if keys else {})}
        for i in range(n)
    ]


@pytest.mark.process
async def test_redis_killed_mid_run_says_why_the_run_stopped(tmp_path: Path) -> None:
    """Redis killed while the journal's next write was a 'started' record (one worker,
    no rate limit): the run stopped sending, but the reason was dropped: exit 1, "not
    started 150", and "journal ... (a rerun sends nothing twice)" as after a normal run,
    no word of Redis.  Now it says it stopped because the journal cannot be written and
    how to resume; the rerun delivers the rest, each message once."""
    n = 200
    redis = RedisServer(
        require_redis_binary(),
        tmp_path / "redis",
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    )
    redis.start()
    try:
        async with FakeOpenTrain(latency=0.005) as server:
            conv = server.add_conversation()
            job = write_jsonl(tmp_path / "job.jsonl", _records(conv, n))
            env = cli_env(server, tmp_path)
            url = f"{redis.url}?job=died&lease=3"
            args = ("bulk", str(job), "--journal", url, "--concurrency", "1")
            proc = await start_cli(*args, "--json", env=env)
            await until_committed(server, 50, proc)
            redis.kill()
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            lost = err.decode()
            assert proc.returncode == 1, lost
            assert "Traceback" not in lost
            assert "can no longer be written" in lost, lost
            assert "rerun the same command to resume" in lost
            assert "a rerun sends nothing twice" not in lost
            if out:  # the summary came (else the error line said it all)
                assert "can no longer be written" in json.loads(out)["stopped"]
            assert server.stats()["committed"] < n
            redis.start()
            resumed = await run_cli(*args, "--json", env=env)
            assert resumed.code == 0, resumed.err
            assert (server.stats()["committed"], server.stats()["duplicates"]) == (n, 0)
    finally:
        redis.stop()
