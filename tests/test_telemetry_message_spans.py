"""A message's span tells how its one outcome was reached: a send settled by reading the
conversation back says so, and an application that traces without metrics still gets it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .telemetry_helpers import Telemetry, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def _send_reconciled(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """One send the server commits but whose answer never arrives: read back, not resent."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=60)
    async with OpenTrainClient(
        server.token, server.base_url, clock=no_wait.clock, sleep=no_wait.sleep, timeout=0.5
    ) as client:
        [outcome] = [o async for o in client.send_many([(conv, "settled")], concurrency=1)]
    assert (outcome.ok, outcome.reconciled) == (True, True)
    assert server.stats()["duplicates"] == 0


async def test_a_reconciled_send_is_marked_on_its_span(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """The span of a message found by read-back carries ``opentrain.reconciled``; the
    outcome counter counts it as sent, once."""
    await _send_reconciled(server, no_wait)
    [span] = [s for s in otel.spans() if s.name == "opentrain.message.send"]
    assert span.attributes is not None
    assert span.attributes["opentrain.outcome"] == "sent"
    assert span.attributes["opentrain.reconciled"] is True
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "sent"}) == 1


async def test_traces_without_metrics_still_end_each_message_span(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Only a tracer provider (no meter provider): no instrument is built, and each
    message's span still ends with its outcome."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = metrics_internal._METER_PROVIDER, trace._TRACER_PROVIDER
    metrics_internal._METER_PROVIDER, trace._TRACER_PROVIDER = None, provider
    try:
        await _send_reconciled(server, no_wait)
    finally:
        metrics_internal._METER_PROVIDER, trace._TRACER_PROVIDER = saved
        provider.shutdown()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "opentrain.message.send"]
    assert span.attributes is not None
    assert span.attributes["opentrain.outcome"] == "sent"
    assert span.attributes["opentrain.reconciled"] is True
