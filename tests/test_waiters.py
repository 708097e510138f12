"""``Waiters``, the one FIFO of waiting tasks (send_many's outcome queue, the pacer's
slow-start window): first come first served, and no wake-up lost to a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from opentrain_async._pacing.window import SlowStartWindow
from opentrain_async._waiters import Waiters


async def _until(condition: Callable[[], bool], turns: int = 100) -> None:
    """Let other tasks run until ``condition`` holds (a bounded number of loop turns)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def test_waiters_are_served_first_come_first_served() -> None:
    """Values go to the tasks in the order they started waiting."""
    waiters: Waiters[int] = Waiters()
    got: list[tuple[str, int]] = []

    async def wait(name: str) -> None:
        got.append((name, await waiters.wait()))

    tasks = []
    for name in "abc":
        tasks.append(asyncio.create_task(wait(name)))
        await _until(lambda: len(waiters) == len(tasks))
    assert [waiters.wake(1), waiters.wake(2), waiters.wake(3)] == [True, True, True]
    await asyncio.gather(*tasks)
    assert got == [("a", 1), ("b", 2), ("c", 3)]
    assert not waiters
    assert waiters.wake(4) is False  # nobody waits: the value is not kept


async def test_a_task_cancelled_in_line_leaves_it() -> None:
    """A cancelled waiter is out of the line at once: the next wake goes to the next task."""
    waiters: Waiters[str] = Waiters()
    first = asyncio.create_task(waiters.wait())
    await _until(lambda: len(waiters) == 1)
    second = asyncio.create_task(waiters.wait())
    await _until(lambda: len(waiters) == 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(waiters) == 1
    assert waiters.wake("x")
    assert await second == "x"


async def test_a_value_handed_to_a_task_cancelled_before_it_ran_goes_to_the_next() -> None:
    """Woken, then cancelled before it could run: the value is passed on, never lost."""
    waiters: Waiters[str] = Waiters()
    first = asyncio.create_task(waiters.wait())
    await _until(lambda: len(waiters) == 1)
    second = asyncio.create_task(waiters.wait())
    await _until(lambda: len(waiters) == 2)
    assert waiters.wake("slot")
    first.cancel()  # it has its value but has not run yet
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "slot"


async def test_on_abandoned_receives_a_value_its_task_will_not_use() -> None:
    """With ``on_abandoned``, the owner decides what an unused value means (the
    window gives the room back) instead of it going to the next in line."""
    waiters: Waiters[bool] = Waiters()
    returned: list[bool] = []
    first = asyncio.create_task(waiters.wait(on_abandoned=returned.append))
    second = asyncio.create_task(waiters.wait())
    await _until(lambda: len(waiters) == 2)
    assert waiters.wake(True)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert returned == [True]
    assert len(waiters) == 1
    assert not second.done()
    waiters.wake_all(False)
    assert await second is False


async def test_wake_all_releases_every_waiter() -> None:
    """``wake_all`` hands the value to each waiting task and empties the line."""
    waiters: Waiters[None] = Waiters()
    tasks = [asyncio.create_task(waiters.wait()) for _ in range(5)]
    await _until(lambda: len(waiters) == 5)
    waiters.wake_all(None)
    assert not waiters
    assert await asyncio.gather(*tasks) == [None] * 5


async def test_the_slow_start_window_passes_on_room_its_cancelled_waiter_was_handed() -> None:
    """The pacer's window over ``Waiters``: room handed to a request cancelled before it
    ran goes to the next in line, and a request cancelled in line blocks nobody."""
    window = SlowStartWindow(initial=1, growth=0.0)
    assert window.try_enter()
    second = asyncio.create_task(window.enter())
    third = asyncio.create_task(window.enter())
    await _until(lambda: len(window._waiters) == 2)
    window.leave(grow=False)  # the room goes to `second`...
    second.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await third is True
    assert window.in_flight == 1
    fourth = asyncio.create_task(window.enter())
    await _until(lambda: len(window._waiters) == 1)
    fourth.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fourth
    window.leave(grow=False)
    assert window.in_flight == 0
    assert window.try_enter()  # no dead waiter holds the line
