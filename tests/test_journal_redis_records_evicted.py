"""A Redis journal whose records list alone disappears (evicted by a ``maxmemory``
policy such as ``volatile-ttl``: the records carry a TTL; or deleted by hand) while the
lease and fence stay: the run must not go on writing a headless list as if nothing
happened, and the rerun must not silently send delivered inputs again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as redis_asyncio

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import Result, cli_env, run_cli, until_committed, write_jsonl
from .redis_server import RedisServer


def _job(tmp_path: Path, server: FakeOpenTrain, n: int) -> tuple[Path, dict[str, str]]:
    convs = [server.add_conversation() for _ in range(3)]
    records = [{"conversationId": convs[i % 3], "content": f"notice {i}"} for i in range(n)]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"))
    return job, env


async def _key_deleted_mid_run(
    redis_server: RedisServer, server: FakeOpenTrain, tmp_path: Path, key: str, n: int
) -> tuple[Result, tuple[str, ...], dict[str, str]]:
    """A run of ``n`` inputs on the Redis journal ``evicted`` whose ``key`` (``records``
    or ``lease``) is deleted after 30 deliveries: the run's result, its arguments and
    environment (for a rerun)."""
    job, env = _job(tmp_path, server, n)
    url = f"{redis_server.url}?job=evicted&lease=3"
    args = ("bulk", str(job), "--journal", url, "--concurrency", "2", "--json")
    run = asyncio.ensure_future(run_cli(*args, env=env, cwd=tmp_path))
    admin = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        await until_committed(server, 30, run)
        assert await admin.delete(f"opentrain:journal:{{evicted}}:{key}") == 1
        return await asyncio.wait_for(run, 60), args, env
    finally:
        await admin.aclose()


async def test_records_evicted_mid_run_stop_the_run_and_say_the_journal_is_gone(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The records key deleted after 30 of 120 deliveries: the run went on appending
    to a new list with no header and no earlier records, exited 0 saying "a rerun with
    this journal sends nothing it recorded as delivered", and the rerun then refused
    the journal as "written by an earlier opentrain-async (format 1 ...)".  Now the
    next append sees the records missing: the run stops sending, exits 1 and says the
    journal is gone (what it delivered is no longer recorded)."""
    n = 120
    async with FakeOpenTrain(latency=0.005) as server:
        first, args, env = await _key_deleted_mid_run(redis_server, server, tmp_path, "records", n)
        assert first.code == 1, first.err
        assert "Traceback" not in first.err
        assert "is gone from Redis" in first.json()["stopped"]
        assert "evicted" in first.json()["stopped"]
        assert server.stats()["committed"] < n
        assert server.stats()["duplicates"] == 0
        rerun = await run_cli(*args, env=env, cwd=tmp_path)
        assert "format 1" not in rerun.err, rerun.err


async def test_a_lease_evicted_mid_run_is_not_blamed_on_another_run(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The lease key alone deleted mid-run (evicted, as the records above): the run
    stopped, safely, but said "its lease was taken over by another run" when no other
    run existed.  Now it says the lease expired in Redis (or was taken over)."""
    async with FakeOpenTrain(latency=0.005) as server:
        first, _, _ = await _key_deleted_mid_run(redis_server, server, tmp_path, "lease", 120)
        assert first.code == 1, first.err
        assert "its lease expired in Redis" in first.err
        assert server.stats()["duplicates"] == 0


async def test_records_evicted_between_runs_are_not_taken_for_a_new_job(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """40 delivered, the records key then deleted (fence and lease state left as a
    finished run leaves them): on 5dc398b the rerun sent all 40 again (40 duplicates,
    exit 0).  It now refuses to start, says the records were lost and how to go on."""
    n = 40
    async with FakeOpenTrain() as server:
        job, env = _job(tmp_path, server, n)
        url = f"{redis_server.url}?job=evicted"
        args = ("bulk", str(job), "--journal", url, "--json")
        first = await run_cli(*args, env=env, cwd=tmp_path)
        assert first.code == 0, first.err
        admin = redis_asyncio.Redis.from_url(redis_server.url)
        try:
            assert await admin.exists("opentrain:journal:{evicted}:fence") == 1
            assert await admin.delete("opentrain:journal:{evicted}:records") == 1
        finally:
            await admin.aclose()
        rerun = await run_cli(*args, env=env, cwd=tmp_path)
        assert server.stats()["duplicates"] == 0, rerun.err
        assert rerun.code == 2, rerun.err
        assert "records are gone from Redis" in rerun.err
        assert "Traceback" not in rerun.err
