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

__all__ = ["SYSTEM_CLOCK", "Clock"]


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
