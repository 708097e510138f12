"""The bulk engine's own resends: once the retry policy's budget is spent, a 429 makes
the engine wait and send the input again.  Those waits are retries in the metrics, and
the resent HTTP attempts say that they are resends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def _resent_three_times(
    otel: Telemetry, server: FakeOpenTrain, time: FakeTime, max_retries: int = 0
) -> None:
    conv = server.add_conversation()
    server.throttle_next(3, retry_after=0.2)
    async with make_client(
        server, max_retries=max_retries, clock=time.clock, sleep=time.sleep
    ) as client:
        report = await client.send_all([(conv, "resent")])
    assert report.sent == 1


async def test_engine_waits_count_as_retries(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """``max_retries=0`` and three 429s: the engine waits three times; the retries
    counter says three, as the server's 429 count does."""
    await _resent_three_times(otel, server, no_wait)
    assert server.stats()["rate_limited"] == 3
    assert otel.total("opentrain.retries") == 3
    assert otel.total("opentrain.rate_limited") == 3
    assert otel.total("http.client.request.duration") == server.stats()["requests"] == 4


@pytest.mark.parametrize("max_retries", [0, 1])
async def test_engine_resends_carry_their_resend_count(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime, max_retries: int
) -> None:
    """After the retry budget, the engine's resends go on numbering the input's attempts
    (``http.request.resend_count``), whatever the budget was."""
    await _resent_three_times(otel, server, no_wait, max_retries)
    posts = sorted(
        (s for s in otel.spans() if s.name == "POST /messages"), key=lambda s: s.start_time or 0
    )
    assert [s.attributes.get("http.request.resend_count") for s in posts] == [None, 1, 2, 3]
