"""One time seam: the client's clock, sleep and wall clock reach every part that reads
time or waits."""

from __future__ import annotations

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain


class Stop(Exception):
    """Raised by the test's sleep to end an endless loop."""


async def test_listen_waits_through_the_client_s_sleep(server: FakeOpenTrain) -> None:
    """listen()'s idle backoff uses the sleep the client was built with (no real waiting),
    growing as documented."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise Stop

    async with OpenTrainClient(server.token, server.base_url, sleep=sleep) as client:
        with pytest.raises(Stop):
            async for _ in client.listen(store=None, idle_backoff=1.0, backoff_factor=2.0):
                pass  # pragma: no cover - the feed is empty
    assert waits == [1.0, 2.0, 4.0, 8.0]
