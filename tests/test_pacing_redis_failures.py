"""Shared pacing on a Redis that misbehaves: read-only or full, corrupt state, gone while a
fail-closed CLI waits, closed with a report in flight, and URL options it does not take."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import ConfigurationError, OpenTrainClient, OpenTrainError
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .cli_helpers import cli_env, start_cli, write_jsonl
from .redis_server import RedisServer
from .waiting import until


async def _probe_settled(backend: RedisPacingBackend) -> None:
    """Wait for a background rejoin probe to finish."""
    await until(lambda: (p := backend.probe) is None or p.done(), "the rejoin probe")


@pytest.mark.parametrize("refusal", ["oom", "replica"])
async def test_a_redis_that_reads_but_refuses_writes_is_one_fallback(
    server: FakeOpenTrain,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
) -> None:
    """Redis full (``maxmemory`` + noeviction) or a read-only replica answers reads but
    refuses every write: that is one outage (one warning, one fallback), not a rejoin
    and a new outage each time a read-only probe gets an answer."""
    admin = redis_asyncio.Redis.from_url(redis_server.url)
    if refusal == "oom":
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", 1)
    else:
        await admin.config_set("replica-read-only", "yes")
        # A replica of a master nobody runs: it keeps serving reads, refuses writes.
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")
    t = FakeTime()
    caplog.set_level(logging.INFO, logger="opentrain_async")
    try:
        async with OpenTrainClient(
            server.token,
            server.base_url,
            clock=t.clock,
            sleep=t.sleep,
            pacing_url=redis_server.url + "?budget=5",
        ) as client:
            backend = client.pacer.backend
            assert isinstance(backend, RedisPacingBackend)
            conv = server.add_conversation()
            for i in range(6):
                await client.send_message(conv, f"m {i}")
                await _probe_settled(backend)
                t.advance(1.5)
            assert client.stats.pacing_fallbacks == 1
            assert not backend.shared
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1
        assert server.stats()["committed"] == 6
    finally:
        await admin.aclose()


async def _read_until(stream: asyncio.StreamReader, text: str, timeout: float = 30) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {text!r}: {seen!r}"
        line = await asyncio.wait_for(stream.readline(), left)
        assert line, f"stream closed before {text!r}: {seen!r}"
        seen += line.decode()
    return seen


@pytest.mark.parametrize("command", ["send", "bulk"])
@pytest.mark.process
async def test_fail_closed_cli_waiting_for_redis_exits_cleanly_on_ctrl_c(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path, command: str
) -> None:
    """``fail_closed`` with Redis down waits; Ctrl-C then ends the CLI with one line (no
    traceback, no password) and nothing sent."""
    conv = server.add_conversation()
    url = f"redis://:hunter2-pw@127.0.0.1:{redis_server.port}/0?fail_closed=true"
    redis_server.kill()
    if command == "send":
        args = ["-v", "send", conv, "hello"]
    else:
        job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
        # --grace: a send waiting for Redis counts as on the wire (journaled as started)
        args = ["-v", "bulk", str(job), "--grace", "0.5"]
    proc = await start_cli(*args, "--pacing-url", url, env=cli_env(server, tmp_path))
    assert proc.stderr is not None
    seen = await _read_until(proc.stderr, "waiting for it")
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    text = seen + err.decode() + out.decode()
    assert proc.returncode not in (0, None)
    assert "Traceback" not in text
    assert "hunter2-pw" not in text
    assert server.sends == []


@pytest.mark.slow  # waits a second or more of real time
async def test_closing_with_a_report_in_flight_is_no_outage_and_leaks_nothing(
    server: FakeOpenTrain, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing the client while a 429's report waits on Redis: our own close is not a
    Redis outage (no warning, no fallback counted), and nothing reconnects to Redis
    afterwards (no rejoin probe on a closed client: a leaked connection)."""
    admin = redis_asyncio.Redis.from_url(redis_server.url)
    caplog.set_level(logging.INFO, logger="opentrain_async")
    client = OpenTrainClient(
        server.token, server.base_url, pacing_url=redis_server.url + "?budget=5"
    )
    try:
        backend = client.pacer.backend
        assert isinstance(backend, RedisPacingBackend)
        conv = server.add_conversation()
        await client.send_message(conv, "warm up")
        # The 429 is answered late: Redis is paused by then, so its report waits.
        server.script(
            "POST /messages",
            status=429,
            error="Rate limit exceeded",
            details={"reason": "rate_limited", "retryAfterSeconds": 0.3},
            delay=0.3,
        )
        sending = asyncio.create_task(client.send_message(conv, "throttled"))
        await until(lambda: server.in_flight > 0, "the send to reach the server")
        await admin.execute_command("CLIENT", "PAUSE", "1500")
        await until(backend.in_redis._report_lock.locked, "the report to start")
        await client.close()
        with pytest.raises(OpenTrainError):
            await sending
        assert client.stats.pacing_fallbacks == 0
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        # Once the pause ends, only the admin connection remains.
        deadline = time.monotonic() + 5
        while len(await admin.client_list()) != 1:
            assert time.monotonic() < deadline, await admin.client_list()
            await asyncio.sleep(0.02)
    finally:
        await client.close()
        await admin.aclose()


@pytest.mark.parametrize(
    "fields",
    [{"tat": "nan"}, {"cuts": "1.5e999"}, {"pause_until": "1e300"}, {"limit": "nan"}],
    ids=["tat-nan", "cuts-overflow", "pause-forever", "limit-nan"],
)
async def test_a_corrupt_shared_state_fails_open_instead_of_crashing_or_hanging(
    server: FakeOpenTrain, redis_server: RedisServer, fields: dict[str, str]
) -> None:
    """The shared hash holds nonsense (another tool, a corrupted write): sends neither
    raise a non-OpenTrain error nor wait forever; the process paces locally."""
    admin = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        async with OpenTrainClient(
            server.token, server.base_url, pacing_url=redis_server.url + "?budget=5"
        ) as client:
            backend = client.pacer.backend
            assert isinstance(backend, RedisPacingBackend)
            assert backend.key is not None
            await admin.hset(backend.key, mapping={"limit": "50", "searching": "0", **fields})
            conv = server.add_conversation()
            server.throttle_next(1, retry_after=0.05)
            for i in range(3):
                await asyncio.wait_for(client.send_message(conv, f"m {i}"), 10)
        assert server.stats()["committed"] == 3
    finally:
        await admin.aclose()


@pytest.mark.parametrize("query", ["foo=bar", "timeout=5", "ssl_cert_reqs=none", "protocol=9"])
def test_a_query_option_the_redis_client_does_not_take_is_refused_up_front(query: str) -> None:
    """A typo in the pacing URL's query (``timeout=`` for ``socket_timeout=``, a TLS
    option on ``redis://``): refused when the client is built, naming the problem and
    not the password (was: every send raised the Redis client's TypeError)."""
    with pytest.raises(ConfigurationError) as info:
        OpenTrainClient(
            "tok", "http://127.0.0.1:9", pacing_url=f"redis://:hunter2-pw@127.0.0.1:6379/0?{query}"
        )
    assert "pacing_url" in str(info.value)
    error: BaseException | None = info.value
    while error is not None:
        assert "hunter2" not in str(error)
        error = error.__cause__ or error.__context__
