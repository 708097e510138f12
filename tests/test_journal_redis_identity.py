"""The Redis journal against a real redis-server: the job is its content (any path), the
lease as Redis counts it bounds every send, retention is bounded, and a journal that
Redis lost is said to be lost."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._cli._journal import Journal, JournalError
from opentrain_async._cli._journal_lease import JournalLease
from opentrain_async._cli._journal_redis import (
    JournalLostError,
    RedisJournalStore,
    RedisJournalURL,
)
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl
from .redis_server import RedisServer


def _records(conv: str, n: int, text: str = "notice") -> list[dict[str, str]]:
    return [{"conversationId": conv, "content": f"{text} {i}"} for i in range(n)]


async def _outside(server: RedisServer) -> redis_asyncio.Redis:
    """Another client: what Redis itself (or an operator) does to the keys."""
    return redis_asyncio.Redis.from_url(server.url)


async def test_a_lease_redis_expired_early_stops_the_next_send(
    redis_server: RedisServer,
) -> None:
    """A forward step of the Redis host's clock expires the lease early (Redis counts
    TTLs on its own clock).  Simulated as Redis does it: the lease key's TTL shortened
    from outside.  The holder's own deadline still says it holds (that was the
    duplicate: another run took over and this one kept sending); now every send first
    reads the lease's PTTL in Redis and stops."""
    url = RedisJournalURL.parse(f"{redis_server.url}?job=jump&lease=30")
    store = RedisJournalStore(url)
    await store.open()
    outside = await _outside(redis_server)
    try:
        await store.confirm_send()  # fine while Redis agrees
        await outside.pexpire(url.key("lease"), 1)
        deadline = time.monotonic() + 10
        while await outside.exists(url.key("lease")):
            assert time.monotonic() < deadline
        store.check_send()  # the local deadline alone cannot see it
        with pytest.raises(JournalLostError, match="expired in Redis"):
            await store.confirm_send()
        with pytest.raises(JournalLostError):
            store.check_send()
    finally:
        await outside.aclose()
        await store.close()


async def test_a_lease_about_to_expire_in_redis_stops_sends_within_the_margin(
    redis_server: RedisServer,
) -> None:
    """Redis says 0.5 s left on a 10 s lease whose margin is 2 s: no send starts."""
    url = RedisJournalURL.parse(f"{redis_server.url}?job=short&lease=10")
    store = RedisJournalStore(url)
    await store.open()
    outside = await _outside(redis_server)
    try:
        await outside.pexpire(url.key("lease"), 500)
        with pytest.raises(JournalLostError, match="about to expire as Redis counts"):
            await store.confirm_send()
    finally:
        await outside.aclose()
        await store.close()


async def test_redis_restarted_empty_says_the_journal_is_gone(
    redis_server: RedisServer,
) -> None:
    """Redis lost everything (restart without persistence, FLUSHALL): the run stops
    and says what is true: the journal is gone and a rerun would send again; no
    "never resent blindly"."""
    url = RedisJournalURL.parse(f"{redis_server.url}?job=flushed&lease=30")
    store = RedisJournalStore(url)
    await store.open()
    await store.create({"journal": "opentrain-async", "format": 2})
    outside = await _outside(redis_server)
    try:
        await outside.flushall()
        with pytest.raises(JournalLostError) as caught:
            await store.append([{"event": "started", "id": "x", "at": 1.0}])
        message = str(caught.value)
        assert "gone from Redis" in message
        assert "sends every input again" in message
        assert "never resent blindly" not in message
    finally:
        await outside.aclose()
        await store.close()


@pytest.mark.parametrize(
    ("retention", "why"),
    [
        ("0.0001", "between 1h and 366d"),
        ("30m", "between 1h and 366d"),
        ("100000000000000000000d", "between 1h and 366d"),
        ("367d", "between 1h and 366d"),
    ],
)
def test_retention_is_bounded(retention: str, why: str) -> None:
    with pytest.raises(JournalError, match=why):
        RedisJournalURL.parse(f"redis://h?job=j&retention={retention}")
    assert RedisJournalURL.parse("redis://h?job=j&retention=1h").retention == 3600


async def test_absurd_retention_is_a_usage_error_before_anything_is_sent(
    server: FakeOpenTrain, tmp_path: Path, redis_server: RedisServer
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 3))
    for retention in ("0.0001", "100000000000000000000d"):
        url = f"{redis_server.url}?job=absurd&retention={retention}"
        result = await cli("bulk", str(job), "--journal", url, server=server)
        assert result.code == 2, result.err
        assert "retention must be between" in result.err
    assert server.stats()["sends"] == 0


async def test_a_redis_journal_resumes_from_another_path_by_content(
    server: FakeOpenTrain, tmp_path: Path, redis_server: RedisServer
) -> None:
    """An evicted pod mounts the job at another path: same content resumes (saying
    where it moved from) and sends nothing twice; other content is refused."""
    conv = server.add_conversation()
    records = _records(conv, 40)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    first_path = write_jsonl(tmp_path / "a" / "job.jsonl", records)
    url = f"{redis_server.url}?job=evicted"
    server.fail_next(3, status=401)  # the first run stops part-way
    first = await cli(
        "bulk", str(first_path), "--journal", url, "--concurrency", "3", "--json", server=server
    )
    assert first.code in (1, 3), first.err
    server.clear_faults()
    moved = write_jsonl(tmp_path / "b" / "job.jsonl", list(reversed(records)))
    resumed = await cli("bulk", str(moved), "--journal", url, "--json", server=server)
    assert resumed.code == 0, resumed.err
    assert f"the input moved from {first_path.resolve()}" in resumed.err
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (40, 0)
    other = write_jsonl(tmp_path / "b" / "other.jsonl", _records(conv, 2, "other"))
    refused = await cli("bulk", str(other), "--journal", url, server=server)
    assert refused.code == 2, refused.err
    assert "holds other content" in refused.err
    assert json.loads(resumed.out)["sent"] == 40 - first.json()["sent"]


async def test_a_failures_file_fed_back_to_the_redis_journal_is_that_job(
    server: FakeOpenTrain, tmp_path: Path, redis_server: RedisServer
) -> None:
    """The failures file of a Redis-journaled job, fed back with the same URL, is
    recorded in that job (every input of it is there); the original again sends
    nothing twice."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 30))
    failures = tmp_path / "failures.jsonl"
    url = f"{redis_server.url}?job=fedback"
    server.fail_next(3, status=401)
    first = await cli(
        "bulk",
        str(job),
        "--journal",
        url,
        "--concurrency",
        "3",
        "--failures",
        str(failures),
        server=server,
    )
    assert first.code in (1, 3), first.err
    server.clear_faults()
    fed = await cli("bulk", str(failures), "--journal", url, "--json", server=server)
    assert fed.code == 0, fed.err
    assert "part of the job of" in fed.err
    again = await cli("bulk", str(job), "--journal", url, "--json", server=server)
    assert again.code == 0, again.err
    assert (server.stats()["committed"], server.stats()["duplicates"]) == (30, 0)


@pytest.mark.parametrize(
    ("owner", "method", "then"),
    [
        (Journal, "started", "is gone: a rerun sends every input again"),  # the summary
        (JournalLease, "confirm_send", "a rerun starts a new journal and sends every input"),
    ],
    ids=["a-record-sees-it-first", "a-send-check-sees-it-first"],
)
async def test_a_run_whose_redis_lost_everything_says_a_rerun_sends_again(
    tmp_path: Path,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    owner: type,
    method: str,
    then: str,
) -> None:
    """FLUSHALL mid-run (what an empty restart looks like to the runner): the run stops
    sending and says the journal is gone, not "rerun to resume", whichever journal call
    sees it first.  The flush lands right before the 21st send's ``started`` record, or
    right before its lease check (the order in which this test used to fail, one run in
    four, when the flush came from outside at any moment)."""
    original = getattr(owner, method)
    checks = 0

    async def flush_before_the_21st(self: Any, *args: Any) -> None:
        nonlocal checks
        checks += 1
        if checks == 21:
            outside = await _outside(redis_server)
            await outside.flushall()
            await outside.aclose()
        await original(self, *args)

    monkeypatch.setattr(owner, method, flush_before_the_21st)
    async with FakeOpenTrain(latency=0.01) as server:
        conv = server.add_conversation()
        job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 400))
        url = f"{redis_server.url}?job=emptied&lease=30"
        result = await cli("bulk", str(job), "--journal", url, "--concurrency", "1", server=server)
    assert checks == 21
    assert result.code == 1, result.err
    assert "gone from Redis" in result.err
    assert then in result.err
    assert "rerun the same command to resume" not in result.err.lower()
    assert "never resent blindly" not in result.err
    assert server.stats()["committed"] == 20  # the 21st was refused before it was sent
