"""A run that died (no release) leaves its Redis journal as acquire left it: the fence
and the ``written`` key persisted, the records expiring ``retention`` after the last
write.  docs/cli.md "Retention": an abandoned job's records "go away on their own a week
after the last write ... after it, the job name starts fresh".  On 748ad8c the records'
expiry at retention looked like an eviction: ``written`` never expires once a run dies,
so every later run of that job name refused to start ("records are gone from Redis")
for ever.  The records' own deadline now rides with ``written``: gone before it is a
loss (refused, as tests/test_journal_redis_records_evicted.py holds); gone after it is
the retention, and the job starts fresh.  A retention of 0.3 s stands for the week."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import attrs
import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._cli._journal_lease import JournalRecordsLostError
from opentrain_async._cli._journal_redis import RedisJournalStore, RedisJournalURL

from .redis_server import RedisServer

HEADER = {"journal": "opentrain-async", "format": 2}
RETENTION = 0.3


@pytest.fixture
async def outside(redis_server: RedisServer) -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def _url(server: RedisServer, job: str) -> RedisJournalURL:
    url = RedisJournalURL.parse(f"{server.url}?job={job}&lease=30")
    return attrs.evolve(url, retention=RETENTION)  # below the 1 h the URL allows


async def _abandoned(server: RedisServer, outside: redis_asyncio.Redis, job: str) -> None:
    """A run that wrote its header and one record, then died: its lease (not released)
    runs out; nothing else is touched."""
    store = RedisJournalStore(_url(server, job))
    await store.open()
    await store.create(HEADER)
    await store.append([{"event": "started", "id": "x", "at": 1.0}])
    assert store._client is not None
    await store._client.aclose()  # killed: no release
    assert await outside.delete(store.lease.k_lease) == 1  # its lease expired


async def test_an_abandoned_job_starts_fresh_once_its_retention_has_passed(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    await _abandoned(redis_server, outside, "abandoned")
    await asyncio.sleep(RETENTION + 0.2)  # the records expire on their own
    store = RedisJournalStore(_url(redis_server, "abandoned"))
    try:
        await store.open()  # on 748ad8c: JournalRecordsLostError, for ever
        assert (await store.read()).records == []
    finally:
        await store.close()


async def test_records_deleted_before_their_retention_still_refuse_the_rerun(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    await _abandoned(redis_server, outside, "evicted-early")
    store = RedisJournalStore(_url(redis_server, "evicted-early"))
    assert await outside.delete(store.lease.k_records) == 1  # evicted: not expired
    with pytest.raises(JournalRecordsLostError, match="records are gone from Redis"):
        await store.open()


async def test_a_written_key_without_a_deadline_still_refuses_the_rerun(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    """``written`` as 748ad8c set it ('1': no deadline known): lost, as it said."""
    await _abandoned(redis_server, outside, "older-run")
    store = RedisJournalStore(_url(redis_server, "older-run"))
    await outside.set(store.lease.k_written, "1")
    await asyncio.sleep(RETENTION + 0.2)
    with pytest.raises(JournalRecordsLostError, match="records are gone from Redis"):
        await store.open()


async def test_a_written_key_of_another_type_refuses_and_never_errors(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    """``written`` left as a list (another tool's key, another format): the rerun is
    refused as a loss (not known when the records were due), not a Redis error."""
    await _abandoned(redis_server, outside, "other-type")
    store = RedisJournalStore(_url(redis_server, "other-type"))
    await outside.delete(store.lease.k_written)
    await outside.rpush(store.lease.k_written, "x")
    await asyncio.sleep(RETENTION + 0.2)
    with pytest.raises(JournalRecordsLostError, match="records are gone from Redis"):
        await store.open()


@pytest.mark.slow  # waits 1.2 s of real time: Redis expires keys on its own clock
async def test_records_evicted_after_a_release_pushed_their_expiry_refuse_the_rerun(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    """A release pushes the records' expiry to a retention from then: ``written`` moves
    with it, so records evicted after the last append's deadline but before the
    release's are still a loss."""
    url = attrs.evolve(_url(redis_server, "released"), retention=1.0)
    store = RedisJournalStore(url)
    await store.open()
    await store.create(HEADER)
    await asyncio.sleep(0.5)
    await store.close()  # the records now expire 1 s from here
    await asyncio.sleep(0.7)  # past the append's deadline, not the release's
    assert await outside.delete(store.lease.k_records) == 1  # evicted
    with pytest.raises(JournalRecordsLostError, match="records are gone from Redis"):
        await RedisJournalStore(url).open()
