"""A bot's shutdown handler stops its listener from another task (``await
messages.aclose()`` or ``finish()``, as the Listener documents) while the loop waits for
the next message.  Before, both raised ``RuntimeError: aclose(): asynchronous generator
is already running`` and the bot went on listening; now the loop ends as after the last
message, the cursor file is free for the next bot, and nothing handled comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("stop", ["aclose", "finish"])
async def test_a_listener_stopped_by_another_task_ends_its_loop(stop: str, tmp_path: Path) -> None:
    cursor = tmp_path / "cursor.json"
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        cid = server.add_conversation()
        server.add_incoming_message(cid, "first")
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            listener = client.listen(store=cursor, start="beginning")
            handled: list[str] = []

            async def bot() -> None:
                async with listener as messages:
                    async for message in messages:
                        handled.append(message.content)

            task = asyncio.create_task(bot())
            await _until(lambda: handled == ["first"], "the first message never came")
            polled = server.stats()["requests"]
            await _until(lambda: server.stats()["requests"] > polled + 2, "no polling")
            await asyncio.wait_for(getattr(listener, stop)(), 5)
            await asyncio.wait_for(task, 5)  # ended, not cancelled, nothing raised
            server.add_incoming_message(cid, "second")
            again: list[str] = []
            async with client.listen(store=cursor, until_idle=True) as messages:
                async for message in messages:  # the file is free: no wait for the lock
                    again.append(message.content)
        assert again == ["second"]


async def test_an_outside_cancel_during_the_stop_still_cancels(tmp_path: Path) -> None:
    """The stop takes back its own cancel only: the loop's task cancelled by someone
    else at the same time is still cancelled."""
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        server.add_conversation()
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            listener = client.listen(store=tmp_path / "cursor.json", start="beginning")

            async def bot() -> None:
                async with listener as messages:
                    async for _ in messages:
                        pass

            task = asyncio.create_task(bot())
            await _until(lambda: server.stats()["requests"] > 2, "the loop never polled")
            task.cancel()
            await asyncio.wait_for(listener.aclose(), 5)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
