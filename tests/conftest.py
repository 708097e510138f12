"""Shared fixtures: the fake OpenTrain server (our own pytest plugin) and a no-wait sleep."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

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
    """No test sees the developer's real token, base URL or CLI config file."""
    for name in (
        "OT_API_TOKEN",
        "OPENTRAIN_API_TOKEN",
        "OT_API_BASE_URL",
        "OPENTRAIN_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
async def server(fake_opentrain: FakeOpenTrain) -> FakeOpenTrain:
    return fake_opentrain


@pytest.fixture
async def client(server: FakeOpenTrain, no_wait: RecordingSleep) -> AsyncIterator[OpenTrainClient]:
    async with OpenTrainClient(server.token, server.base_url, sleep=no_wait) as c:
        yield c


def make_client(server: FakeOpenTrain, **options: Any) -> OpenTrainClient:
    return OpenTrainClient(options.pop("token", server.token), server.base_url, **options)
