"""docs/telemetry.md's dashboard is PromQL over Prometheus names: every metric and label
it names must be in a scrape of a real job, or its panel stays empty without an error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.exporter.prometheus")

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import REGISTRY, generate_latest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client

DOC = Path(__file__).resolve().parents[1] / "docs" / "telemetry.md"


@pytest.fixture
def scrape() -> Iterator[None]:
    """The CLI's set-up: a meter provider with the Prometheus reader, as the global one."""
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    saved = metrics_internal._METER_PROVIDER
    metrics_internal._METER_PROVIDER = provider
    try:
        yield
    finally:
        metrics_internal._METER_PROVIDER = saved
        provider.shutdown()  # unregisters the reader's collector


def _dashboard() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## A dashboard") :]


async def test_every_name_the_dashboard_queries_is_scraped(scrape: None) -> None:
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        conv = server.add_conversation()
        server.throttle_next(2, retry_after=0.5)
        server.fail_next(1, status=500)
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, reconcile=True
        ) as client:
            report = await client.send_all([(conv, f"m{i}") for i in range(5)])
            scraped = generate_latest(REGISTRY).decode()
    assert report.sent == 5
    dashboard = _dashboard()
    labels = set(re.findall(r"(?:by \(|\{)([a-z_]+)", dashboard)) - {"le"}
    assert labels, dashboard
    assert sorted(label for label in labels if f"{label}=" not in scraped) == []
    names = set(re.findall(r"\b((?:opentrain|http_client)_[a-z_]+)\b", dashboard))
    metrics = names - labels
    assert len(metrics) >= 12, metrics
    series = set(re.findall(r"^([a-z_]+)[{ ]", scraped, re.MULTILINE))
    assert sorted(metrics - series) == []
