"""The listen() tests' shared piece: a log handler that says when a listener waits for
another on its position (the lock of ``_listen_lock``), and its fixture (registered in
conftest)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

WAIT = 30.0
"""Seconds any one step may take before the test fails (never slept)."""


class SaysWaiting(logging.Handler):
    """Sets ``seen`` when a listener says it waits for another: the moment to act on,
    without polling the log or sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen = asyncio.Event()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "in use by another listener" in record.getMessage():
            self.lines.append(record.getMessage())
            self.seen.set()

    async def first(self, other: asyncio.Future[object]) -> None:
        """Until this was said, or ``other`` is done (was: it ran beside the first)."""
        said = asyncio.ensure_future(self.seen.wait())
        try:
            await asyncio.wait_for(
                asyncio.wait([said, other], return_when=asyncio.FIRST_COMPLETED), WAIT
            )
        finally:
            said.cancel()
        assert self.seen.is_set(), f"did not wait: {other.result()!r}"


@pytest.fixture
def says_waiting() -> Iterator[SaysWaiting]:
    handler = SaysWaiting()
    logger = logging.getLogger("opentrain_async")
    level = logger.level
    logger.setLevel(logging.INFO)  # whatever an earlier test configured
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
