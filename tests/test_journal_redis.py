"""The journal on Redis, against a real redis-server: records, lease, fencing, retention."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async._cli._journal import InputIdentity, Journal, JournalError, JournalState
from opentrain_async._cli._journal import open_journal as _open_journal
from opentrain_async._cli._journal_lease import lease_clock
from opentrain_async._cli._journal_redis import (
    DEFAULT_LEASE,
    DEFAULT_RETENTION,
    JournalBusyError,
    JournalLostError,
    JournalUnavailableError,
    RedisJournalStore,
    RedisJournalURL,
    is_redis_url,
    parse_duration,
    read_job,
)

from .redis_server import RedisServer, require_redis_binary
from .waiting import until


def _url(server: RedisServer, job: str = "invoices", **query: str) -> RedisJournalURL:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return RedisJournalURL.parse(f"{server.url}?job={job}{extra}")


JOB = InputIdentity("/jobs/invoices.jsonl", "http://127.0.0.1/api/public/v1")


async def open_redis_journal(url: RedisJournalURL, **options: Any) -> tuple[Journal, JournalState]:
    """What ``bulk`` does: take the job's lease, check and read its records."""
    return await _open_journal(RedisJournalStore(url, **options), JOB)


def _store(journal: Journal) -> RedisJournalStore:
    assert isinstance(journal.store, RedisJournalStore)
    return journal.store


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


# -- the URL -----------------------------------------------------------------------


def test_url_parts_and_defaults() -> None:
    """host, port, db, job; rediss is TLS; lease and retention default to 15 s and 7 days."""
    url = RedisJournalURL.parse("redis://cache.internal:6380/2?job=invoices-2026.11")
    assert (url.host, url.port, url.db, url.job, url.tls) == (
        "cache.internal",
        6380,
        2,
        "invoices-2026.11",
        False,
    )
    assert (url.lease, url.retention) == (DEFAULT_LEASE, DEFAULT_RETENTION) == (15.0, 7 * 86400)
    tls = RedisJournalURL.parse("rediss://h?job=j&lease=30s&retention=2d")
    assert (tls.tls, tls.port, tls.db, tls.lease, tls.retention) == (True, 6379, 0, 30, 172800)
    assert tls.redacted() == "rediss://h:6379/0?job=j"
    assert url.key("records") == "opentrain:journal:{invoices-2026.11}:records"
    assert is_redis_url("REDIS://h?job=x")
    assert is_redis_url("rediss://h?job=x")
    assert not is_redis_url("journal.jsonl")


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis://h:6379/0", "job must be"),
        ("redis://h/0?job=has space", "job must be"),
        ("redis://h/0?job={tag}", "job must be"),
        ("redis://h/0?job=a+b", "job must be"),
        ("redis://h/zero?job=j", "database number"),
        ("redis://h/0?job=j&lease=soon", "lease='soon' is not a duration"),
        ("redis://h/0?job=j&lease=0.5", "lease must be at least 1 second"),
        ("redis://h/0?job=j&retention=0", "retention must be greater than 0"),
        ("redis://h/0?job=j&jbo=x", "unknown parameter 'jbo'"),
        ("redis://:s3cr3t@h:99999/0?job=j", "bad host or port"),
        ("redis:///0?job=j", "no host"),
    ],
)
def test_bad_urls_name_the_part_at_fault(url: str, names: str) -> None:
    """Each mistake is a JournalError naming the parameter and its limit."""
    with pytest.raises(JournalError, match=names) as caught:
        RedisJournalURL.parse(url)
    assert "s3cr3t" not in str(caught.value)


def test_durations() -> None:
    assert [parse_duration(t, "x") for t in ("90", "90s", "15m", "12h", "7d", "1.5h")] == [
        90,
        90,
        900,
        43200,
        604800,
        5400,
    ]


def test_password_never_shown() -> None:
    """repr, str, redacted form and 'where' never hold the password (user name is kept)."""
    url = RedisJournalURL.parse("rediss://ops:p%40ss-w0rd@h:6380/1?job=j")
    assert url.password == "p@ss-w0rd"
    assert url.username == "ops"
    for text in (repr(url), str(url), url.redacted(), url.where):
        assert "p@ss" not in text
        assert "p%40ss" not in text
    assert url.redacted() == "rediss://ops:***@h:6380/1?job=j"
    store = RedisJournalStore(url)
    assert "p@ss" not in repr(store)


# -- records -----------------------------------------------------------------------


async def test_records_survive_the_run_and_are_read_back(redis_server: RedisServer) -> None:
    """What one run appends, the next run (any process) reads back in order as state."""
    url = _url(redis_server)
    journal, state = await open_redis_journal(url)
    assert state.inputs == {}
    await journal.run_started("job.jsonl")
    await journal.started("key:a", 1, "conv_1", "0" * 64, 10.0)
    await journal.ended_ok("key:a", "msg_1", reconciled=False)
    await journal.started("key:b", 2, "conv_1", "1" * 64, 11.0)
    assert journal.records == 4
    await journal.aclose()

    again, state = await open_redis_journal(url)
    try:
        assert state.runs == 1
        assert state.inputs["key:a"].ok
        assert state.delivered_ids == {"msg_1"}
        assert state.inputs["key:b"].open
        assert state.inputs["key:b"].first_started == 11.0
    finally:
        await again.aclose()
    records, info = await read_job(url)
    assert records[0]["journal"] == "opentrain-async"  # the header marks it as ours
    assert records[0]["input"]["path"] == JOB.path
    assert [r["event"] for r in records[1:]] == ["run", "started", "ended", "started"]
    assert (records[1]["host"], records[1]["pid"], records[1]["lease"]) == (
        _store(journal).host,
        os.getpid(),
        1,
    )
    assert info.holder is None  # released at the end of the run


async def test_concurrent_appends_are_batched(
    redis_server: RedisServer, raw: redis_asyncio.Redis
) -> None:
    """300 concurrent appends land whole and in call order, in far fewer round trips
    (the journal's group commit: one script call per batch)."""
    url = _url(redis_server)
    journal, _ = await open_redis_journal(url)
    await raw.config_resetstat()
    await asyncio.gather(
        *(journal.started(f"key:{i}", i, "conv", "0" * 64, float(i)) for i in range(300))
    )
    stats = await raw.info("commandstats")
    await journal.aclose()
    calls = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    assert 1 <= calls <= 30
    records, _ = await read_job(url)
    assert [r["id"] for r in records[1:]] == [f"key:{i}" for i in range(300)]
    assert _store(journal).records == 301  # the header, then the 300


async def test_a_non_journal_value_is_an_error(
    redis_server: RedisServer, raw: redis_asyncio.Redis
) -> None:
    """A record that is not a JSON object is reported with its position, never skipped."""
    url = _url(redis_server)
    journal, _ = await open_redis_journal(url)
    await journal.run_started("job.jsonl")
    await journal.aclose()
    await raw.rpush(url.key("records"), b"garbage")
    with pytest.raises(JournalError, match="corrupt: record 3"):
        await open_redis_journal(url)
    # The failed open released its lease: a later run is not locked out.
    assert await raw.exists(url.key("lease")) == 0


# -- retention ---------------------------------------------------------------------


async def test_records_expire_after_the_retention(
    redis_server: RedisServer, raw: redis_asyncio.Redis
) -> None:
    """Records and fence expire RETENTION after the last write, finished or abandoned."""
    url = _url(redis_server, retention="2h")
    journal, _ = await open_redis_journal(url)
    await journal.run_started("job.jsonl")
    ttl = await raw.pttl(url.key("records"))
    assert 7100_000 < ttl <= 7200_000  # abandoned now: still goes away
    await journal.aclose()
    for name in ("records", "fence"):
        assert 7100_000 < await raw.pttl(url.key(name)) <= 7200_000
    _, info = await read_job(url)
    assert info.records_ttl is not None
    assert 7100 < info.records_ttl <= 7200


# -- the lease ---------------------------------------------------------------------


async def test_second_run_is_refused_naming_the_holder(redis_server: RedisServer) -> None:
    """While a run holds the job, another is refused with host, pid and since."""
    url = _url(redis_server)
    first, _ = await open_redis_journal(url)
    try:
        other = RedisJournalStore(url, host="node-b", pid=os.getpid() + 1)
        with pytest.raises(JournalBusyError) as caught:
            await other.open()
        await other.close()
        message = str(caught.value)
        assert f"pid {os.getpid()}" in message
        assert "since 20" in message
        assert "lease #1" in message
        assert caught.value.holder.pid == os.getpid()
        _records, info = await read_job(url)
        assert info.holder is not None
        assert info.holder.token == 1
    finally:
        await first.aclose()
    second, _ = await open_redis_journal(url)  # released: the next run goes
    assert _store(second).token == 2  # fencing tokens only grow
    await second.aclose()


@pytest.mark.process
async def test_holder_dead_on_this_machine_is_taken_over_at_once(
    redis_server: RedisServer,
) -> None:
    """A lease whose holder's process is gone on this machine does not block a resume."""
    url = _url(redis_server, lease="60")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()  # a PID that no longer runs on this machine
    ghost = RedisJournalStore(url, pid=child.pid)
    await ghost.open()
    ghost.lease.renewer.cancel()  # type: ignore[union-attr]  # it "died" holding the lease
    journal, _ = await open_redis_journal(url)
    try:
        assert _store(journal).took_over is not None
        assert _store(journal).took_over.pid == child.pid
        assert _store(journal).token == 2
        with pytest.raises(JournalLostError, match="taken over"):
            await ghost.append([{"event": "run", "at": 1}])
    finally:
        await journal.aclose()
        await ghost.close()


@pytest.mark.slow  # waits a second or more of real time
async def test_paused_holder_loses_its_lease_and_cannot_send_or_record(
    redis_server: RedisServer,
) -> None:
    """A holder that stops renewing (a pause) loses the lease once it expires; another
    run takes over; on waking the first can neither send nor record anything."""
    url = _url(redis_server, lease="1")
    paused, _ = await open_redis_journal(url)
    _store(paused).check_send()  # fine while the lease holds
    assert _store(paused).lease.renewer is not None
    _store(paused).lease.renewer.cancel()  # the process is frozen: nothing renews
    other = RedisJournalStore(url, host="node-b", pid=1)
    await _acquire_eventually(other)
    try:
        with pytest.raises(JournalLostError, match="stopped sending"):
            _store(paused).check_send()
        with pytest.raises(JournalLostError):
            await paused.started("key:a", 1, "c", "0" * 64, 1.0)
        await other.append([{"event": "run", "at": 2.0}])
        records = (await other.read()).records
        assert [r.get("event") for r in records] == [None, "run"]  # header, the new run's
        assert "host" in records[1]  # and nothing from the paused run
    finally:
        await other.close()
        await paused.aclose()


@pytest.mark.slow  # waits a second or more of real time
async def test_fencing_is_checked_in_redis_not_only_locally(redis_server: RedisServer) -> None:
    """Even with a clock that says the lease still holds, Redis refuses a stale holder."""
    url = _url(redis_server, lease="1")
    frozen = [0.0]
    stale = RedisJournalStore(url, clock=lambda: frozen[0])
    await stale.open()
    assert stale.lease.renewer is not None
    stale.lease.renewer.cancel()
    other = RedisJournalStore(url, host="node-b", pid=1)
    await _acquire_eventually(other)
    try:
        stale.check_send()  # its own clock has not moved: locally it looks valid
        with pytest.raises(JournalLostError, match="taken over"):
            await stale.append([{"event": "started", "id": "x", "at": 1.0}])
        with pytest.raises(JournalLostError):  # and from then on, sends stop too
            stale.check_send()
    finally:
        await other.close()
        await stale.close()


async def _acquire_eventually(store: RedisJournalStore, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await store.open()
            return
        except JournalBusyError:
            assert time.monotonic() < deadline, "the lease never expired"
            await asyncio.sleep(0.05)


@pytest.mark.slow  # waits a second or more of real time
async def test_renewal_keeps_a_live_holder(redis_server: RedisServer) -> None:
    """A running holder keeps its 2 s lease past its end: nobody can take it.  (2 s, not
    1 s: renewed every 0.67 s, the lease survives a 0.9 s stall of this loop, which a
    loaded machine under coverage has; 2.5 s is still past the unrenewed lease's end.)"""
    url = _url(redis_server, lease="2")
    journal, _ = await open_redis_journal(url)
    try:
        until = time.monotonic() + 2.5
        other = RedisJournalStore(url, host="node-b", pid=1)
        while time.monotonic() < until:
            with pytest.raises(JournalBusyError):
                await other.open()
            _store(journal).check_send()
            await asyncio.sleep(0.1)
        await other.close()
    finally:
        await journal.aclose()


# -- Redis faults ------------------------------------------------------------------


async def test_unreachable_at_start(tmp_path: Path) -> None:
    """No Redis: JournalUnavailableError naming the redacted URL, no password anywhere."""
    server = RedisServer(require_redis_binary(), tmp_path / "r", password="hunter2-secret")
    url = RedisJournalURL.parse(server.url.replace("/0", "/0?job=j"))  # never started
    with pytest.raises(JournalUnavailableError) as caught:
        await open_redis_journal(url)
    _assert_no_secret(caught.value, "hunter2-secret")
    assert f"127.0.0.1:{server.port}" in str(caught.value)


async def test_wrong_password_is_unavailable_without_leaking(tmp_path: Path) -> None:
    """A password Redis refuses: a clear error that never repeats either password."""
    server = RedisServer(require_redis_binary(), tmp_path / "r", password="right-secret")
    server.start()
    try:
        url = RedisJournalURL.parse(f"redis://:wrong-secret@127.0.0.1:{server.port}/0?job=j")
        with pytest.raises(JournalUnavailableError) as caught:
            await open_redis_journal(url)
        _assert_no_secret(caught.value, "wrong-secret")
        _assert_no_secret(caught.value, "right-secret")
        good = RedisJournalURL.parse(server.url + "?job=j")
        journal, _ = await open_redis_journal(good)
        await journal.run_started("x")
        await journal.aclose()
    finally:
        server.stop()


def _assert_no_secret(error: BaseException, secret: str) -> None:
    assert error.__cause__ is None
    assert error.__context__ is None  # nothing of the Redis client's rides along
    seen: BaseException | None = error
    while seen is not None:
        assert secret not in str(seen)
        assert secret not in repr(seen)
        seen = seen.__cause__ or seen.__context__


@pytest.mark.process
async def test_redis_killed_mid_run_stops_sends_and_records(redis_server: RedisServer) -> None:
    """Redis dies: the next record fails (JournalLostError) and sends are refused."""
    url = _url(redis_server, lease="2")
    journal, _ = await open_redis_journal(url)
    await journal.run_started("job.jsonl")
    redis_server.kill()
    with pytest.raises(JournalLostError, match="Rerun the same command") as caught:
        await journal.started("key:a", 1, "c", "0" * 64, 1.0)
    assert "stopped sending" in str(caught.value)
    assert caught.value.__context__ is None  # the client's error is not attached
    with pytest.raises(JournalLostError):
        _store(journal).check_send()
    await asyncio.wait_for(journal.aclose(), 10)  # closing does not hang or raise


async def test_send_hook_stops_posts_once_the_lease_is_lost(redis_server: RedisServer) -> None:
    """The aiohttp hook lets POSTs through while the lease holds and stops them after."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/", handle)
    http = TestServer(app, host="127.0.0.1")
    await http.start_server()
    url = _url(redis_server, lease="1")
    journal, _ = await open_redis_journal(url)
    try:
        async with aiohttp.ClientSession(trace_configs=[_store(journal).trace_config()]) as session:
            await (await session.post(http.make_url("/"))).release()
            assert _store(journal).lease.renewer is not None
            _store(journal).lease.renewer.cancel()
            await until(lambda: _store(journal).lost is not None, "the lease to be lost")
            with pytest.raises(JournalLostError):
                await session.post(http.make_url("/"))
            await (await session.get(http.make_url("/"))).release()  # reads still go
        assert hits == ["POST", "GET"]
    finally:
        await journal.aclose()
        await http.close()


@pytest.mark.process
async def test_redis_gone_stops_sends_within_the_lease_even_without_writes(
    redis_server: RedisServer,
) -> None:
    """Nothing to record for a while (every send waiting on the pacer) and Redis dies:
    the renewals fail, and sends stop once the lease could have expired."""
    url = _url(redis_server, lease="1")
    journal, _ = await open_redis_journal(url)
    store = _store(journal)
    store.check_send()
    redis_server.kill()
    # Renewed no later than now: by this time the 1 s lease has expired in Redis at the
    # latest, and sends must have stopped (a loaded machine only looks later).
    expired = lease_clock() + 1.0
    await until(lambda: store.lost is not None or lease_clock() >= expired, "the lease end")
    assert store.lost is not None
    with pytest.raises(JournalLostError, match="stopped sending"):
        store.check_send()
    await asyncio.wait_for(journal.aclose(), 10)
