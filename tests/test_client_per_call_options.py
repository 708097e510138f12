"""Per-call options where the README promises them: preflight's timeout, with_options for a
batch and a bot loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    APITimeoutError,
    MemoryCursorStore,
    OpenTrainClient,
)
from opentrain_async.testing import FakeOpenTrain, Fault

from .conftest import make_client

# -- per-call options where the README promises them ----------------------------------------


@pytest.fixture
async def silent_api() -> AsyncIterator[str]:
    """A loopback API that never answers (until the test ends)."""
    released = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", stall)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    released.set()
    await server.close()


async def test_preflight_takes_a_timeout_like_every_read(silent_api: str) -> None:
    """The README: ``timeout=`` and ``max_retries=`` work on every read, ``preflight()``
    included (it was a TypeError)."""
    async with OpenTrainClient("ot_pat_x", silent_api, timeout=30) as client:
        with pytest.raises(APITimeoutError):
            await client.preflight(timeout=0.2, max_retries=0)


async def test_a_batch_and_a_bot_loop_take_options_from_with_options(server: FakeOpenTrain) -> None:
    """The README's way for a batch: ``client.with_options(timeout=...).send_all(...)``;
    the copy's timeout bounds each send (a send that stalls after commit is reconciled
    by read-back, not waited out for the client's 30 s)."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    async with make_client(server, timeout=30, reconcile_delay=0) as client:
        report = await client.with_options(timeout=0.3).send_all([(conv, "a"), (conv, "b")])
        assert (report.sent, report.reconciled) == (2, 1)
        server.add_incoming_message(conv, "ping")
        bot = client.with_options(timeout=5).listen(store=MemoryCursorStore(), start="beginning")
        assert (await anext(bot)).content == "ping"
    assert server.stats()["duplicates"] == 0
