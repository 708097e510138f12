"""A clock whose sleep moves it at once by the time asked: drives pacers step by step.

Unlike ``FakeTime`` (concurrent sleepers wake together), each sleep here adds its own
time, which is what tests that call a pacer's methods one after another want."""

from __future__ import annotations


class Clock:
    """``clock`` and ``sleep`` for a ``Pacer``; ``now`` starts at 100 and tests set it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
