"""A shared pacing backend outlives one client's close: a client reopened (``async with``
again) and another client given the same backend keep sharing, and an outage after that
is still one warning and one counted fallback (or a wait with ``fail_closed``), never
silent local pacing."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._pacing import PacingState
from opentrain_async._pacing.fallback import PacingFallback
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .pacing_kit import Switch
from .redis_server import RedisServer


class _Switch(Switch):
    """A shared store that fails while ``down`` (its 429s are reported to it too)."""

    async def load(self) -> PacingState:
        if self.down:
            raise ConnectionError("down")
        return await super().load()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_closing_one_client_leaves_the_other_sharing(
    server: FakeOpenTrain, no_wait: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """Two clients, one backend: the first closes (twice), the store then fails under
    the second: that is an outage it warns of and counts, not silence."""
    store = _Switch(clock=no_wait.clock)
    backend = PacingFallback(store, where="the test store", clock=no_wait.clock)
    conv = server.add_conversation()
    options = {"pacing_backend": backend, "clock": no_wait.clock, "sleep": no_wait.sleep}
    first = OpenTrainClient(server.token, server.base_url, **options)  # type: ignore[arg-type]
    second = OpenTrainClient(server.token, server.base_url, **options)  # type: ignore[arg-type]
    async with first:
        await first.send_message(conv, "first")
    await first.close()  # closing twice is still one client gone
    await second.send_message(conv, "second, shared")
    assert backend.shared
    store.down = True
    server.throttle_next(1, retry_after=0.5)  # the 429 is reported to the store, which fails
    await second.send_message(conv, "second, local")
    assert second.stats.pacing_fallbacks == 1
    assert len(_warnings(caplog)) == 1
    await second.close()
    assert [m["content"] for m in server.messages(conv)] == [
        "first",
        "second, shared",
        "second, local",
    ]


async def test_a_fail_closed_backend_still_waits_after_another_client_closed(
    server: FakeOpenTrain,
) -> None:
    """``fail_closed`` over a store one client closed: the other's send waits for the
    store (retrying), it does not go out paced alone."""
    store = _Switch()
    waits: list[float] = []
    waited = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= 3:
            waited.set()
        await asyncio.sleep(0)

    backend = PacingFallback(store, where="the test store", fail_closed=True, sleep=sleep)
    conv = server.add_conversation()
    first = OpenTrainClient(server.token, server.base_url, pacing_backend=backend)
    second = OpenTrainClient(server.token, server.base_url, pacing_backend=backend)
    await first.close()
    store.down = True
    sending = asyncio.create_task(second.send_message(conv, "waits"))
    await asyncio.wait_for(waited.wait(), 10)
    assert server.sends == []
    store.down = False
    await asyncio.wait_for(sending, 10)
    await second.close()
    assert len(server.sends) == 1


async def test_a_reopened_client_shares_its_redis_again(
    server: FakeOpenTrain, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """``async with client`` twice over a pacing URL: the second run still asks Redis,
    so Redis killed then is one warning and one counted fallback (not silent local
    pacing), and the client rejoins when it is back."""
    conv = server.add_conversation()
    client = OpenTrainClient(
        server.token,
        server.base_url,
        pacing_url=redis_server.url + "?budget=5&retry_every=0.05",
    )
    backend = client.pacer.backend
    assert isinstance(backend, RedisPacingBackend)
    async with client:
        await client.send_message(conv, "first run")
    async with client:
        await client.send_message(conv, "second run")
        redis_server.kill()
        server.throttle_next(1, retry_after=0.05)  # the 429 is reported to Redis, which is gone
        await client.send_message(conv, "Redis gone")
        assert client.stats.pacing_fallbacks == 1
        assert not backend.shared
        redis_server.start()
        deadline, n = time.monotonic() + 10, 0
        while not backend.shared:  # keeps asking, so the probe runs
            assert time.monotonic() < deadline, "did not rejoin"
            await client.send_message(conv, f"until rejoined {n}")
            n += 1
    assert len(_warnings(caplog)) == 1
    assert server.stats()["duplicates"] == 0
