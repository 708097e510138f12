"""Shared fixtures: the fake OpenTrain server (our own pytest plugin) and a no-wait sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .redis_server import RedisServer, require_redis_binary

pytest_plugins = ["opentrain_async.testing.pytest_plugin"]


class RecordingSleep:
    """An injectable sleep that records waits and returns at once (no real waiting)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.hooks: list[Callable[[float], None]] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        for hook in self.hooks:
            hook(seconds)


@pytest.fixture
def no_wait() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's real token, base URL, CLI config file or proxy."""
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


@pytest.fixture
async def server(fake_opentrain: FakeOpenTrain) -> FakeOpenTrain:
    return fake_opentrain


@pytest.fixture
async def client(server: FakeOpenTrain, no_wait: RecordingSleep) -> AsyncIterator[OpenTrainClient]:
    async with OpenTrainClient(server.token, server.base_url, sleep=no_wait) as c:
        yield c


def make_client(server: FakeOpenTrain, **options: Any) -> OpenTrainClient:
    return OpenTrainClient(options.pop("token", server.token), server.base_url, **options)


class Canned:
    """A loopback server answering each path with queued canned responses.

    aioresponses 0.7.9 cannot build responses for aiohttp 3.14, so the narrow cases
    use this instead: the last response queued for a path repeats.
    """

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[web.Response | Callable[[], web.Response]]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def _add(self, method: str, path: str, payload: Any, status: int, body: str | None) -> None:
        def make() -> web.Response:
            if body is not None:
                return web.Response(status=status, text=body, content_type="text/html")
            return web.json_response(payload, status=status)

        self.routes.setdefault((method, path), []).append(make)

    def get(
        self, path: str, *, payload: Any = None, status: int = 200, body: str | None = None
    ) -> None:
        self._add("GET", path, payload, status, body)

    def post(
        self, path: str, *, payload: Any = None, status: int = 200, body: str | None = None
    ) -> None:
        self._add("POST", path, payload, status, body)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/public/v1")
        self.requests.append((request.method, request.raw_path, dict(request.query)))
        queue = self.routes.get((request.method, path))
        if not queue:
            return web.json_response({"error": "no canned answer", "code": "NOT_FOUND"}, status=404)
        make = queue.pop(0) if len(queue) > 1 else queue[0]
        assert callable(make)
        return make()


@pytest.fixture
async def http() -> AsyncIterator[tuple[Canned, str]]:
    canned = Canned()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", canned.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield canned, f"http://127.0.0.1:{server.port}"
    await server.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of this test's own on a free loopback port (killable, restartable)."""
    server = RedisServer(require_redis_binary(), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
