"""One client shared with another thread's event loop while its own loop still runs (a
sync web view calling ``asyncio.run()`` in a worker thread on a module-level client)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


async def in_another_thread(call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``asyncio.run(call())`` in a thread of its own: what it returned or raised."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(asyncio.run(call()))
        except BaseException as exc:  # handed back to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.to_thread(thread.join)
    return result[0]


async def test_a_client_used_from_another_threads_loop_says_so(server: FakeOpenTrain) -> None:
    """On main this was a bare ``RuntimeError`` ("got Future attached to a different
    loop") from inside aiohttp, plus "Future exception was never retrieved" noise, after
    the send had taken the pacer and the connection pool of the other loop.  Now it is a
    ConfigurationError before anything is touched; a batch stops at once (its first
    input says why, the rest are not attempted), nothing reaches the server from the
    other thread, and the client goes on serving its own loop."""
    conv = server.add_conversation()
    async with OpenTrainClient(server.token, server.base_url) as client:
        await client.send_message(conv, "first")  # the session now lives on this loop
        sent = await in_another_thread(lambda: client.send_message(conv, "from a thread"))
        read = await in_another_thread(lambda: client.read_messages(conv))
        report = await in_another_thread(
            lambda: client.send_all([(conv, "bulk 1"), (conv, "bulk 2")])
        )
        for refused in (sent, read):
            assert isinstance(refused, ConfigurationError), repr(refused)
            assert "another event loop" in str(refused)
        assert [o.kind for o in report.failures] == ["error", "not_attempted"]
        assert isinstance(report.failures[0].error, ConfigurationError)
        await client.send_message(conv, "after")
    assert [m["content"] for m in server.messages(conv)] == ["first", "after"]
    assert [r.method for r in server.requests] == ["POST", "POST"]


def test_a_client_from_a_loop_not_closed_yet_says_so() -> None:
    """Two event loops made by hand in one thread (``new_event_loop()`` and
    ``run_until_complete``), the first not closed: on main the second loop's send raised
    ``RuntimeError: Timeout context manager should be used inside a task``."""
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:

        async def send_once() -> OpenTrainClient:
            async with FakeOpenTrain() as server:
                client = OpenTrainClient(server.token, server.base_url, max_retries=0)
                await client.send_message(server.add_conversation(), "one")
                return client

        client = first.run_until_complete(send_once())
        with pytest.raises(ConfigurationError, match="another event loop"):
            second.run_until_complete(client.send_message("conv_1", "two"))
        first.run_until_complete(client.close())
    finally:
        first.close()
        second.close()
