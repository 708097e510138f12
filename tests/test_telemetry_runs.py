"""Histogram measurements are handed to the OpenTelemetry SDK in runs (the cheap way to
record them): a reader still sees every one, and each keeps the span it was taken under."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest

from opentrain_async import _telemetry, _telemetry_instruments
from opentrain_async.testing import FakeOpenTrain

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def test_a_collection_records_what_is_pending_first(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """Three requests, far fewer than a run: the reader sees all three in the duration
    histogram, at each collection, and none twice."""
    conv = server.add_conversation()
    async with make_client(server) as client:
        for i in range(3):
            await client.send_message(conv, f"hello {i}")
        first = otel.total("http.client.request.duration")
        await client.send_message(conv, "one more")
    assert first == 3
    assert otel.total("http.client.request.duration") == 4
    assert otel.total("opentrain.requests") == 4
    assert server.stats()["requests"] == 4


async def test_each_measurement_keeps_its_own_span_for_exemplars(
    otel: Telemetry, server: FakeOpenTrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run recorded while a later message's span is current still gives each duration
    the message span it was measured under (its exemplar): the first message's request
    (about 1 ms) and the second's (4 s) land in different buckets, and the run of two
    is recorded as the second request ends, under the second message's span."""
    monkeypatch.setattr(_telemetry_instruments, "_RUN", 2)
    clock = types.SimpleNamespace(now=0.0, step=2.0**-10)  # exact in binary

    def perf_counter() -> float:
        clock.now += clock.step  # a request's start and end are consecutive readings
        return clock.now

    monkeypatch.setattr(_telemetry, "time", types.SimpleNamespace(perf_counter=perf_counter))
    conv = server.add_conversation()
    async with make_client(server) as client:
        await client.send_message(conv, "first")
        clock.step = 4.0
        await client.send_message(conv, "second")
    first, second = (s for s in otel.spans() if s.name == "opentrain.message.send")
    (point,) = otel.points("http.client.request.duration")
    assert point.count == 2
    by_value = {e.value: e.span_id for e in point.exemplars}
    assert by_value == {2.0**-10: first.context.span_id, 4.0: second.context.span_id}
