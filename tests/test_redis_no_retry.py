"""The package's own Redis clients never re-send a command whose reply was lost.

redis-py retries a command on a timeout or a dropped connection, on a new connection.  A
script that Redis already ran (a pacing report adding successes, a journal append) then
runs twice: successes counted twice, records written twice.  Here a real redis-server
sits behind a loopback proxy that forwards a script call but swallows Redis's reply, so
the client times out after Redis ran it; the client must give up (the caller decides what
a failure means), and Redis must have run the script once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError

from opentrain_async import RedisDedupeStore, _redis
from opentrain_async._cli._journal_redis_url import RedisJournalURL
from opentrain_async._pacing.redis_options import parse_pacing_url, redis_from_url

from .redis_server import RedisServer

_COUNT = "local n = redis.call('INCR', KEYS[1]) return n"


class _ReplyEater:
    """A TCP proxy to Redis: once armed, the next connection that sends ``marker``
    forwards it (Redis runs it) but never gets Redis's reply back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.marker: bytes | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deaf: list[bool]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                if deaf[0]:
                    continue
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _upstream(
        self, reader: asyncio.StreamReader, deaf: list[bool]
    ) -> AsyncIterator[bytes]:
        while data := await reader.read(65536):
            if self.marker is not None and self.marker in data:
                self.marker = None
                deaf[0] = True
            yield data

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        r_reader, r_writer = await asyncio.open_connection("127.0.0.1", self.port)
        deaf = [False]
        back = asyncio.ensure_future(self._pipe(r_reader, c_writer, deaf))
        with contextlib.suppress(OSError):
            async for data in self._upstream(c_reader, deaf):
                r_writer.write(data)
                await r_writer.drain()
        r_writer.close()
        await back

    def serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._serve(c_reader, c_writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


@pytest.fixture
async def proxy(redis_server: RedisServer) -> AsyncIterator[tuple[_ReplyEater, int]]:
    eater = _ReplyEater(redis_server.port)
    server = await asyncio.start_server(eater.serve, "127.0.0.1", 0)
    try:
        yield eater, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(eater.tasks):
            task.cancel()
        await asyncio.gather(*eater.tasks, return_exceptions=True)


def _client(kind: str, port: int) -> Any:
    """A client built as the journal (``connect``) or shared pacing (``connect_url``)
    builds its own, with a 0.3 s reply timeout."""
    if kind == "pacing":
        url = f"redis://127.0.0.1:{port}/0?budget=0.3"
        return redis_from_url(*parse_pacing_url(url))
    return _redis.connect(
        _redis.RedisURL("redis", "127.0.0.1", port, ""),
        what="a test",
        single_try=True,
        socket_timeout=0.3,
        socket_connect_timeout=5,
    )


@pytest.mark.parametrize("kind", ["journal", "pacing"])
async def test_a_script_whose_reply_is_lost_runs_once(
    proxy: tuple[_ReplyEater, int], redis: Any, kind: str
) -> None:
    """The reply times out after Redis ran the script: the caller sees the timeout, and
    Redis ran the script once, not once per retry."""
    eater, port = proxy
    client = _client(kind, port)
    try:
        count = client.register_script(_COUNT)
        assert await count(keys=["ran"]) == 1  # loaded and run: the next call is one EVALSHA
        eater.marker = b"EVALSHA"
        outcome: Any = None
        try:
            outcome = await count(keys=["ran"])
        except RedisTimeoutError as exc:
            outcome = exc
        assert eater.marker is None, "the proxy never saw the call"
        assert await redis.get("ran") == "2"  # a re-sent call: "3"
        assert isinstance(outcome, RedisTimeoutError), outcome
    finally:
        await client.aclose()


def _retries(client: Any) -> int:
    """How many times a command of ``client`` is re-sent after a timeout (no I/O)."""
    pool = client.connection_pool
    return int(pool.connection_class(**pool.connection_kwargs).retry.get_retries())


@pytest.mark.parametrize("kind", ["journal", "pacing"])
def test_the_package_clients_never_resend(kind: str) -> None:
    """The journal's client and the pacing URL's client: no redis-py retry at all."""
    if kind == "journal":
        client = RedisJournalURL.parse("redis://127.0.0.1:6379/0?job=j").connect(env={})
    else:
        client = redis_from_url(*parse_pacing_url("redis://127.0.0.1:6379/0?budget=1"))
    assert _retries(client) == 0


async def test_a_webhook_claim_resent_by_the_users_client_is_still_ours(
    proxy: tuple[_ReplyEater, int], redis: Any
) -> None:
    """``RedisDedupeStore`` over the user's client, which retries: the claim's
    ``SET NX`` ran, its reply was lost, and the re-sent one finds the key taken, by
    this very claim.  That is our claim, not another delivery's (which would answer 409
    and leave the event unhandled until the claim expires)."""
    eater, port = proxy
    client = redis_asyncio.Redis(
        host="127.0.0.1", port=port, socket_timeout=0.3, retry=Retry(NoBackoff(), 1)
    )
    try:
        store = RedisDedupeStore(client)
        await client.ping()
        eater.marker = b"webhook:event:e1"
        assert await store.claim("event:e1", "t1", 60) is None
        assert eater.marker is None, "the proxy never saw the claim"
        assert await store.claim("event:e1", "t2", 60) == "pending"
        await store.settle("event:e1", "t1", 60)
        assert await redis.get("opentrain_async:webhook:event:e1") == "done"
    finally:
        await client.aclose()
