"""The CLI's --pacing-url (and $OT_PACING_URL): real subprocesses, a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import assert_one_line_error, cli_env, run_cli, start_cli, write_jsonl
from .redis_server import RedisServer


async def pacing_keys(server: RedisServer) -> list[str]:
    r = redis_asyncio.Redis.from_url(server.url, decode_responses=True)
    try:
        return list(await r.keys("opentrain:pacing:*"))
    finally:
        await r.aclose()


@pytest.mark.process
async def test_two_bulk_processes_share_the_limit(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two `bulk` processes, one with --pacing-url and one with $OT_PACING_URL, each
    stated (--rate, its own) at just under half the server's limit: together no 429,
    every line delivered once, one shared state."""
    server.set_rate_limit(TokenBucket(rate=100, burst=5))
    conv = server.add_conversation()
    jobs = [
        write_jsonl(
            tmp_path / f"{name}.jsonl",
            [{"conversationId": conv, "content": f"{name} {i}"} for i in range(25)],
        )
        for name in ("a", "b")
    ]
    env = cli_env(server, tmp_path)
    a = await start_cli(
        "bulk",
        str(jobs[0]),
        "--rate",
        "45",
        "--json",
        "--pacing-url",
        redis_server.url + "?budget=5",
        env=env,
    )
    b = await start_cli(
        "bulk", str(jobs[1]), "--rate", "45", "--json",
        env={**env, "OT_PACING_URL": redis_server.url + "?budget=5"},
    )  # fmt: skip
    outs = [await p.communicate() for p in (a, b)]
    assert [p.returncode for p in (a, b)] == [0, 0], [o[1].decode() for o in outs]
    assert [json.loads(o[0])["sent"] for o in outs] == [25, 25]
    stats = server.stats()
    assert stats["rate_limited"] == 0
    assert stats["committed"] == stats["distinct"] == 50
    states = await pacing_keys(redis_server)
    assert len(states) == 1  # one token: one shared state


async def test_bad_pacing_url_is_one_line_without_the_password(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A malformed --pacing-url: one error line naming the problem, no password, no
    traceback, nothing sent."""
    conv = server.add_conversation()
    result = await run_cli(
        "send", conv, "hello", "--pacing-url", "redis://:hunter2-pw@cache:port/0",
        env=cli_env(server, tmp_path),
    )  # fmt: skip
    assert result.code != 0
    assert_one_line_error(result)
    assert "--pacing-url: " in result.err
    assert "hunter2-pw" not in result.err + result.out
    assert server.sends == []


@pytest.mark.process
async def test_unreachable_redis_warns_once_and_sends(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Redis down: `send -v` still sends (fail-open) and says so once, password hidden."""
    conv = server.add_conversation()
    url = f"redis://:hunter2-pw@127.0.0.1:{redis_server.port}/0"
    redis_server.kill()
    result = await run_cli(
        "-v", "send", conv, "hello", "--pacing-url", url, env=cli_env(server, tmp_path)
    )
    assert result.code == 0, result.err
    assert result.err.count("shared pacing: Redis at redis://:***@127.0.0.1") == 1
    assert "hunter2-pw" not in result.err + result.out
    assert len(server.sends) == 1
