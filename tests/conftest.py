"""Shared fixtures: the fake OpenTrain server (and our own pytest plugin) and a no-wait sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .children import ended_children
from .cli_helpers import in_process_runs_ended
from .listen_kit import says_waiting as says_waiting
from .redis_server import RedisServer, SharedRedis, require_redis_binary

pytest_plugins = ["opentrain_async.testing.pytest_plugin"]


@pytest.fixture
def no_wait() -> FakeTime:
    """The client's sleep in these tests: records every wait and returns at once."""
    return FakeTime()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's real token, base URL, CLI config file or proxy; no
    test ends with an in-process CLI run still going (it would outlive the test's env)."""
    for name in (
        "OT_API_TOKEN",
        "OPENTRAIN_API_TOKEN",
        "OT_API_BASE_URL",
        "OPENTRAIN_API_BASE_URL",
        "OPENTRAIN_LOG",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield
    if not in_process_runs_ended(timeout=60):
        pytest.fail("an in-process CLI run (tests/cli_helpers.run_cli) outlived its test")


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenTrain]:
    """A fake server on the real clock: CLI subprocesses and real-time pacing share it."""
    async with FakeOpenTrain() as fake:
        yield fake


@pytest.fixture
async def client(server: FakeOpenTrain, no_wait: FakeTime) -> AsyncIterator[OpenTrainClient]:
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep
    ) as c:
        yield c


def make_client(server: FakeOpenTrain, **options: Any) -> OpenTrainClient:
    return OpenTrainClient(options.pop("token", server.token), server.base_url, **options)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Every process the test started (asyncio's create_subprocess_*) is killed and
    reaped when it ends, passed, failed or cancelled: none runs on into the next test,
    none stays stopped (tests/children.py)."""
    with ended_children():
        return (yield)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that start processes first (order otherwise kept): they are the longest
    and mostly wait, so pytest-xdist's workers (handed two tests at a time, see the
    Makefile) start them early and fill their waits with the short in-process tests,
    instead of ending the run on one worker's long tail."""
    items.sort(key=lambda item: item.get_closest_marker("process") is None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "process: starts a real process because the process is the point (signals, kill -9, "
        "a terminal, the interpreter's start-up); `make quick` leaves these out",
    )
    config.addinivalue_line(
        "markers",
        "slow: in-process, but waits a second or more of real time (Redis lease and pacing "
        "timings, a CLI run at a server's pace, the docs build); `make quick` leaves these out",
    )


@pytest.fixture(scope="session")
def _session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedRedis]:
    shared = SharedRedis(RedisServer(require_redis_binary(), tmp_path_factory.mktemp("redis")))
    try:
        yield shared
    finally:
        shared.server.stop()


@pytest.fixture
def redis_server(_session_redis: SharedRedis) -> RedisServer:
    """A real redis-server on loopback, empty at the start of the test (killable, restartable).

    One server serves the session; a test that kills it, or changes its configuration, gets
    it back as new for the next test."""
    return _session_redis.fresh()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[redis_asyncio.Redis]:
    """A client of ``redis_server`` (strings decoded), closed when the test ends."""
    client = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()
