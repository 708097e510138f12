"""pytest fixtures for testing code that uses opentrain_async, with no real waiting.

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["opentrain_async.testing.pytest_plugin"]

It needs pytest-asyncio (``pip install "opentrain-async[testing]"``) and switches it to
auto mode with function-scoped loops unless you chose yourself (``asyncio_mode`` or
``asyncio_default_fixture_loop_scope`` in your ini file, or ``--asyncio-mode``), so a
plain ``async def test_...`` runs as written.

Fixtures (each test gets fresh ones):

- ``fake_time``: a ``FakeTime``; the server's and the client's clocks and sleeps (its
  wall clock starts at the real time).
- ``fake_opentrain``: a started ``FakeOpenTrain`` on a free loopback port, on fake time.
- ``opentrain_client``: an ``OpenTrainClient`` connected to it, on the same fake time, so
  429 hints, backoffs and pacing pauses pass in no real time.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest
import pytest_asyncio

from opentrain_async import OpenTrainClient

from ._server import FakeOpenTrain
from ._time import FakeTime

__all__ = ["fake_opentrain", "fake_time", "opentrain_client"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Use pytest-asyncio's auto mode, function-scoped loops, unless the user chose."""
    if config.getoption("asyncio_mode", None) is None and not _ini_sets(config, "asyncio_mode"):
        config.option.asyncio_mode = "auto"
    if not _ini_sets(config, "asyncio_default_fixture_loop_scope"):
        _set_ini(config, "asyncio_default_fixture_loop_scope", "function")


def _ini_sets(config: pytest.Config, name: str) -> bool:
    """Whether the user's configuration (ini file, pyproject or ``-o``) sets `name`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytest 9 deprecates Config.inicfg (kept as a proxy)
        return name in config.inicfg


def _set_ini(config: pytest.Config, name: str, value: str) -> None:
    """Give `name` a value as if the user's ini file said so (before anyone reads it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config.inicfg[name] = value
    getattr(config, "_inicache", {}).pop(name, None)


@pytest.fixture
def fake_time() -> FakeTime:
    """Virtual time shared by the fake server and the client: sleeps return at once.

    Its wall clock starts at the real time (whole seconds), not a fixed date: code under
    test that makes its own ``OpenTrainClient`` (on the real clock) then agrees with the
    server's timestamps as it would with OpenTrain's.  Read-back after a lost answer
    looks for messages stamped after the client's own "now"; 11 months apart, it missed
    every one and sent it again.  Virtual time only moves the server's stamps later.
    """
    return FakeTime(wall_start=datetime.now(timezone.utc).replace(microsecond=0))


@pytest_asyncio.fixture
async def fake_opentrain(fake_time: FakeTime) -> AsyncIterator[FakeOpenTrain]:
    """A started FakeOpenTrain on a free loopback port and on `fake_time`, closed after."""
    async with FakeOpenTrain(clock=fake_time.clock, now=fake_time.datetime) as server:
        yield server


@pytest_asyncio.fixture
async def opentrain_client(
    fake_opentrain: FakeOpenTrain, fake_time: FakeTime
) -> AsyncIterator[OpenTrainClient]:
    """An OpenTrainClient for `fake_opentrain`'s default token, on `fake_time`."""
    async with OpenTrainClient(
        fake_opentrain.token,
        fake_opentrain.base_url,
        clock=fake_time.clock,
        sleep=fake_time.sleep,
        wall_clock=fake_time.time,
    ) as client:
        yield client
