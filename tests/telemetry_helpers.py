"""The OpenTelemetry SDK's in-memory reader and exporter as the global providers, for a test."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@attrs.define
class Telemetry:
    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric ``name`` in one collection."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def total(self, name: str, **attributes: Any) -> float:
        """The sum of the metric's values (counters) or counts (histograms) whose
        attributes include ``attributes``."""
        total = 0.0
        for point in self.points(name):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += getattr(point, "value", None) or getattr(point, "count", 0)
        return total

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def attribute_values(self) -> list[str]:
        """Every span name, attribute and event, and every metric point's and exemplar's
        attribute, as text: where a secret or content must never be."""
        values: list[Any] = []
        for span in self.spans():
            values += [span.name, *span.attributes.values()]
            for event in span.events:
                values += [event.name, *event.attributes.values()]
        data = self.reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        values += list(point.attributes.values())
                        for exemplar in getattr(point, "exemplars", None) or ():
                            values += list((exemplar.filtered_attributes or {}).values())
        return [json.dumps(v) if not isinstance(v, str) else v for v in values]


def use_global_providers() -> Iterator[Telemetry]:
    """Install fresh SDK providers as the global ones (as an application does at
    start-up) for one test, and put back what was there after it."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The API lets a process set each provider once; tests need one per test.
    saved = metrics_internal._METER_PROVIDER, trace._TRACER_PROVIDER
    metrics_internal._METER_PROVIDER = meter_provider
    trace._TRACER_PROVIDER = tracer_provider
    try:
        yield Telemetry(reader, exporter)
    finally:
        metrics_internal._METER_PROVIDER, trace._TRACER_PROVIDER = saved
        meter_provider.shutdown()
        tracer_provider.shutdown()


async def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter, for what this process cannot undo (a package
    imported already, providers the API has built); it must exit 0."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
