"""``Clock``: the SDK's one time seam.

Every reading of time and every wait goes through the client's ``Clock``: the pacer,
retry backoff, read-back's delay and budget, ``listen()``'s idle waits, ``send_all``'s
elapsed time, the CLI's journal and settle step.  Tests (and users' tests) swap it for
a fake one, so that nothing really waits and the clocks move exactly as far as the
waits would have taken them (``opentrain_async.testing``'s fake time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._errors import ConfigurationError
from ._validation import check_sleep

__all__ = ["SYSTEM_CLOCK", "Clock", "clock_from_options"]


@attrs.frozen
class Clock:
    """A monotonic clock, an async sleep and a wall clock (Unix seconds) that belong
    together."""

    monotonic: Callable[[], float] = time.monotonic
    """Seconds from an arbitrary start, never going back: deadlines and durations."""
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    """Wait this many seconds (of this clock's time)."""
    wall: Callable[[], float] = time.time
    """Unix seconds: what is compared with the server's timestamps and written down."""


SYSTEM_CLOCK = Clock()
"""The real time: ``time.monotonic``, ``asyncio.sleep``, ``time.time``."""


def clock_from_options(
    clock: Callable[[], float] | None,
    sleep: Callable[[float], Awaitable[Any]] | None,
    wall: Callable[[], float] | None,
) -> Clock:
    """A client's ``Clock`` from its ``clock=``/``sleep=``/``wall_clock=`` options (None:
    the real one).  ``clock`` and ``sleep`` come together or not at all: a fake sleep on
    the real clock returns at once while a deadline never comes nearer (a loop waiting
    for one spins in real time), and a real sleep never moves a fake clock."""
    if (clock is None) != (sleep is None):
        given, missing = ("sleep", "clock") if clock is None else ("clock", "sleep")
        raise ConfigurationError(
            f"{given}= was given without {missing}=: pass clock= and sleep= together "
            "(with opentrain_async.testing.FakeTime: clock=t.clock, sleep=t.sleep, "
            "wall_clock=t.time; with a sleep that really waits: clock=time.monotonic)"
        )
    if sleep is not None:
        check_sleep(sleep)
    real = SYSTEM_CLOCK
    return Clock(
        monotonic=real.monotonic if clock is None else clock,
        sleep=real.sleep if sleep is None else sleep,
        wall=real.wall if wall is None else wall,
    )
