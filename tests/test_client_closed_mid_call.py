"""A client closed while calls wait for a connection slot: each of them fails as an
``OpenTrainError`` and none is sent.  A careless service closes its client (leaves its
``async with``) while tasks it started still run; those waiting behind
``max_concurrency`` had already taken the session before the wait, and sent on it
once closed, which raised aiohttp's bare ``RuntimeError('Session is closed')``.  Over
loopback; a stalled read holds the client's one connection slot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from opentrain_async import ConfigurationError, OpenTrainClient, OpenTrainError
from opentrain_async.testing import FakeOpenTrain

from .waiting import until

WAITING = 3


def in_line(client: OpenTrainClient) -> int:
    """Calls waiting for the client's connection slot (asyncio's semaphore queue)."""
    return len(client._pipeline._semaphore._waiters or ())  # type: ignore[attr-defined]


async def calls_behind_a_stalled_read(
    server: FakeOpenTrain,
    client: OpenTrainClient,
    call: Callable[[int], Awaitable[object]],
    close: Callable[[], Awaitable[object]],
) -> list[object]:
    """``WAITING`` calls in line behind a read holding the one slot, then ``close``:
    what each of the calls (not the read) ended with."""
    server.script("GET /messages", delay=30.0, times=1)
    read = asyncio.ensure_future(client.list_conversations())
    await until(lambda: server.in_flight == 1, "the read on the wire")
    calls = [asyncio.ensure_future(call(i)) for i in range(WAITING)]
    await until(lambda: in_line(client) == WAITING, "the calls to queue")
    await close()
    results = await asyncio.gather(*calls, return_exceptions=True)
    await asyncio.gather(read, return_exceptions=True)
    return results


def assert_refused_as_closed(results: list[object]) -> None:
    for result in results:
        assert isinstance(result, OpenTrainError), repr(result)
        assert isinstance(result, ConfigurationError), repr(result)
        assert "closed" in str(result)


async def test_sends_waiting_for_a_slot_when_the_client_closes_fail_unsent(
    server: FakeOpenTrain,
) -> None:
    convs = [server.add_conversation() for _ in range(WAITING)]
    client = OpenTrainClient(server.token, server.base_url, max_concurrency=1, max_retries=0)
    results = await calls_behind_a_stalled_read(
        server, client, lambda i: client.send_message(convs[i], f"m{i}"), client.close
    )
    assert_refused_as_closed(results)
    assert server.sends == []


async def test_reads_waiting_for_a_slot_when_the_client_closes_fail_typed(
    server: FakeOpenTrain,
) -> None:
    conv = server.add_conversation()
    client = OpenTrainClient(server.token, server.base_url, max_concurrency=1, max_retries=0)
    results = await calls_behind_a_stalled_read(
        server, client, lambda i: client.read_messages(conv), client.close
    )
    assert_refused_as_closed(results)


async def test_sends_waiting_when_the_callers_session_closes_fail_unsent(
    server: FakeOpenTrain,
) -> None:
    """The same when the caller closes the ``session=`` it lent the client."""
    convs = [server.add_conversation() for _ in range(WAITING)]
    session = aiohttp.ClientSession()
    client = OpenTrainClient(
        server.token, server.base_url, session=session, max_concurrency=1, max_retries=0
    )
    try:
        results = await calls_behind_a_stalled_read(
            server, client, lambda i: client.send_message(convs[i], f"m{i}"), session.close
        )
    finally:
        await client.close()
    assert_refused_as_closed(results)
    assert server.sends == []
