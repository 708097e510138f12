"""Providers as careless applications set them up: after the client was created, shut
down while a job runs, replaced mid-job, or the API installed without the SDK.  No send
may fail because of telemetry, and what is reported goes to the provider of the moment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .telemetry_helpers import Telemetry, run_python, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def test_providers_set_up_after_the_client_report(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """The client was created (and sent) before the application set its providers up:
    what it sends afterwards is reported, its gauges included."""
    conv = server.add_conversation()
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        await client.send_message(conv, "before")
        for otel in use_global_providers():
            report = await client.send_all([(conv, f"after {i}") for i in range(3)])
            assert report.sent == 3
            assert otel.total("opentrain.outcomes") == 3
            assert len([s for s in otel.spans() if s.name == "opentrain.message.send"]) == 3
            assert otel.points("opentrain.pacer.paused")  # this client's gauges


async def test_providers_shut_down_mid_job_never_fail_a_send(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """The application shuts its meter and tracer providers down while a job runs (a
    signal handler, a test's teardown): every send still gets its outcome."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal

    conv = server.add_conversation()
    items = [(conv, f"m{i}") for i in range(40)]
    sent = 0
    client = make_client(server, clock=no_wait.clock, sleep=no_wait.sleep)
    async with client, client.send_many(items) as outcomes:
        async for outcome in outcomes:
            sent += outcome.ok
            if outcome.index == 5:
                metrics_internal._METER_PROVIDER.shutdown()  # type: ignore[attr-defined]
                trace._TRACER_PROVIDER.shutdown()  # type: ignore[attr-defined]
    assert sent == 40
    assert len(server.messages(conv)) == 40


async def test_a_provider_replaced_mid_job_gets_the_rest(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A second meter provider set up mid-job: it counts from 0, the outcomes after the
    switch, and the in-flight gauge of the live client still works."""
    conv = server.add_conversation()
    items = [(conv, f"m{i}") for i in range(20)]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        async with client.send_many(items) as outcomes:
            async for outcome in outcomes:
                if outcome.index == 9:
                    break
        first = otel.total("opentrain.outcomes")
        for second in use_global_providers():
            report = await client.send_all(items[10:])
            assert report.sent == 10
            assert second.total("opentrain.outcomes") == 10
            assert second.total("http.client.active_requests") == 0
    assert first >= 10


@pytest.mark.process
async def test_the_api_without_the_sdk_builds_nothing(server: FakeOpenTrain) -> None:
    """``opentelemetry-api`` installed, no SDK, no provider: the hooks build nothing and
    sends work (the API's proxy providers are not reported to)."""
    conv = server.add_conversation()
    code = f"""
import asyncio, sys
sys.modules["opentelemetry.sdk"] = None  # the API only
from opentelemetry import metrics, trace
from opentrain_async import OpenTrainClient, _telemetry
metrics.get_meter_provider(); trace.get_tracer_provider()  # the API's proxies exist now
async def main():
    async with OpenTrainClient({server.token!r}, {server.base_url!r}) as client:
        assert _telemetry.message_start() is None
        assert _telemetry.request_start("POST", "/messages", "h", 1) is None
        report = await client.send_all([({conv!r}, "a"), ({conv!r}, "b")])
    assert report.sent == 2, report
asyncio.run(main())
"""
    await run_python(code)
    assert len(server.messages(conv)) == 2


async def test_a_misconfigured_provider_variable_never_fails_a_send(
    server: FakeOpenTrain, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``OTEL_PYTHON_METER_PROVIDER`` / ``..._TRACER_PROVIDER`` naming no installed
    provider: the API raises from its getters; sends go on, unreported, and the failure is
    logged once, not on every request."""
    from opentelemetry import trace
    from opentelemetry.metrics import _internal as metrics_internal

    from opentrain_async import _telemetry_instruments

    monkeypatch.setenv("OTEL_PYTHON_METER_PROVIDER", "no_such_provider")
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "no_such_provider")
    monkeypatch.setattr(
        _telemetry_instruments, "_FAST", False
    )  # read at import: as if set before it
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    conv = server.add_conversation()
    async with make_client(server) as client:
        report = await client.send_all([(conv, f"m{i}") for i in range(5)])
        await client.send_message(conv, "single")
    assert report.sent == 5
    assert len(server.messages(conv)) == 6
    failures = [r for r in caplog.records if "Failed to load configured provider" in r.message]
    assert len(failures) <= 2, len(failures)  # one per provider at most
