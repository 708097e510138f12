"""Two shutdown handlers (a signal handler and a health check, say) stop one listener
from two tasks at once while its loop waits for the next message.  Each stop cancelled
the loop's wait, and the stop takes back one cancel only (``Task.uncancel``): on Python
3.11+ the second one went on, and the bot's loop died with ``CancelledError`` instead of
ending as after the last message.  Now the second stop waits for the first."""

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


@pytest.mark.parametrize("stops", [("aclose", "aclose"), ("finish", "aclose")])
async def test_a_listener_stopped_from_two_tasks_ends_its_loop(
    stops: tuple[str, str], tmp_path: Path
) -> None:
    clock = FakeTime()
    async with FakeOpenTrain() as server:
        cid = server.add_conversation()
        server.add_incoming_message(cid, "first")
        async with OpenTrainClient(
            server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
        ) as client:
            listener = client.listen(store=tmp_path / "cursor.json", start="beginning")
            handled: list[str] = []

            async def bot() -> None:
                async with listener as messages:
                    async for message in messages:
                        handled.append(message.content)

            task = asyncio.create_task(bot())
            await _until(lambda: handled == ["first"], "the first message never came")
            polled = server.stats()["requests"]
            await _until(lambda: server.stats()["requests"] > polled + 2, "no polling")
            first, second = (asyncio.create_task(getattr(listener, s)()) for s in stops)
            await asyncio.wait_for(asyncio.gather(first, second), 5)
            await asyncio.wait_for(task, 5)  # ended, not cancelled
            assert not task.cancelled()
