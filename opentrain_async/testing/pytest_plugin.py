"""Opt-in pytest plugin providing a started ``FakeOpenTrain`` as the ``fake_opentrain`` fixture.

Enable it in your conftest.py with
``pytest_plugins = ["opentrain_async.testing.pytest_plugin"]`` (needs pytest-asyncio).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from ._server import FakeOpenTrain

__all__ = ["fake_opentrain"]


@pytest_asyncio.fixture
async def fake_opentrain() -> AsyncIterator[FakeOpenTrain]:
    """A started FakeOpenTrain on a free loopback port, closed after the test."""
    async with FakeOpenTrain() as server:
        yield server
