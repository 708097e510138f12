"""A Redis journal that Redis lost (restarted empty, flushed) is said to be gone by
whichever check sees it first, and a lease that merely expired is never taken for that:
"gone" is the lease, the fence and the records all missing (the fence lives as long as
the job: persisted while a run holds the lease, the records' retention after)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async._cli._journal_redis import (
    JournalLostError,
    RedisJournalStore,
    RedisJournalURL,
)

from .redis_server import RedisServer
from .waiting import until

HEADER = {"journal": "opentrain-async", "format": 2}


@pytest.fixture
async def outside(redis_server: RedisServer) -> AsyncIterator[redis_asyncio.Redis]:
    """Another client: what Redis itself (or an operator) does to the keys."""
    client = redis_asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _store(server: RedisServer, job: str, lease: int = 30) -> RedisJournalStore:
    store = RedisJournalStore(RedisJournalURL.parse(f"{server.url}?job={job}&lease={lease}"))
    await store.open()
    return store


@pytest.mark.parametrize("created", [True, False], ids=["with-records", "before-any-record"])
async def test_a_flush_seen_first_by_the_send_check_says_gone(
    redis_server: RedisServer, outside: redis_asyncio.Redis, created: bool
) -> None:
    """FLUSHALL, then a send's lease check is the first journal call: it says the
    journal is gone (a rerun sends again), not that the lease expired (rerun to
    resume).  The check used to see only the lease missing."""
    store = await _store(redis_server, "flushed")
    try:
        if created:
            await store.create(HEADER)
        await outside.flushall()
        with pytest.raises(JournalLostError, match="gone from Redis") as caught:
            await store.confirm_send()
        assert "sends every input again" in str(caught.value)
        assert store.gone
        with pytest.raises(JournalLostError, match="gone from Redis"):
            await store.append([{"event": "started", "id": "x", "at": 1.0}])
    finally:
        await store.close()


async def test_an_expired_lease_with_the_journal_still_there_is_not_gone(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    """The lease alone missing (it expired: a clock step on the Redis host, a pause)
    while the job's records and fence are there: "expired", and a rerun resumes."""
    store = await _store(redis_server, "expired")
    try:
        await store.create(HEADER)
        await outside.delete(store.url.key("lease"))
        with pytest.raises(JournalLostError, match="expired in Redis") as caught:
            await store.confirm_send()
        assert "Rerun the same command to resume" in str(caught.value)
        assert not store.gone
    finally:
        await store.close()
    assert await outside.llen(store.url.key("records")) == 1  # nothing of it was removed


@pytest.mark.slow  # waits a second or more of real time
async def test_the_renewer_seeing_the_flush_first_says_gone(
    redis_server: RedisServer, outside: redis_asyncio.Redis
) -> None:
    """The background renewal (every third of the lease) sees the flush before any
    send or record does: gone too."""
    store = await _store(redis_server, "renewed", lease=3)
    try:
        await store.create(HEADER)
        await outside.flushall()
        ended = lambda: (r := store.lease.renewer) is None or r.done()  # noqa: E731
        await until(ended, "the renewer to see the flush")
        assert store.gone
        assert store.lost is not None
        assert "gone from Redis" in store.lost
    finally:
        await store.close()
