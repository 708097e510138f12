"""What OpenTelemetry costs a bulk send: ``python -m benchmarks.telemetry``.

The same unthrottled batch (the fake server in its own process, no latency: the client's
CPU is the limit, the harshest case for per-request overhead) is sent with no provider
set up; with a ``MeterProvider`` (the Prometheus exporter's reader, as ``bulk
--metrics-port`` sets up); with that plus a ``TracerProvider`` sampling every span into
a ``BatchSpanProcessor`` (its exporter discards them: the export's network is the
application's cost, not ours); and with one sampling a tenth of the messages
(``ParentBased(TraceIdRatioBased(0.1))``, a common production setting).

Variants run interleaved, round after round, in one process; each round is compared
with the same round's "off" run, and the table shows the median ratio and its spread
(min-max) of wall-clock messages per second, and of messages per second of this
process's CPU time (the client's own cost, which a busy machine blurs less: the server
runs in another process).

The API lets a process set each provider once; like the tests, this swaps the globals
between runs (``opentrain_async._telemetry`` follows whichever provider is current).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from opentrain_async import OpenTrainClient

from ._server import fake_server

CONVERSATIONS = 50


class _Discard(SpanExporter):
    """An exporter that drops every batch (the SDK's work up to the export is measured)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _off() -> Callable[[], dict[str, Any]]:
    metrics_internal._METER_PROVIDER = None
    trace._TRACER_PROVIDER = None
    return dict


def _metrics() -> Callable[[], dict[str, Any]]:
    # A fresh registry each run: the exporter's collector registers itself once per reader.
    from prometheus_client import CollectorRegistry, generate_latest

    reader = PrometheusMetricReader()
    registry = CollectorRegistry()
    registry.register(reader._collector)
    provider = MeterProvider(metric_readers=[reader])
    metrics_internal._METER_PROVIDER = provider
    trace._TRACER_PROVIDER = None

    def done() -> dict[str, Any]:
        scraped = generate_latest(registry).decode()
        outcomes = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith("opentrain_outcomes_total{")
        )
        provider.shutdown()
        return {"outcomes_scraped": outcomes}

    return done


def _metrics_and_traces(ratio: float = 1.0) -> Callable[[], dict[str, Any]]:
    done_metrics = _metrics()
    exporter = _Discard()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace._TRACER_PROVIDER = provider

    def done() -> dict[str, Any]:
        provider.force_flush()
        provider.shutdown()
        return {**done_metrics(), "spans": exporter.spans}

    return done


VARIANTS: dict[str, Callable[[], Callable[[], dict[str, Any]]]] = {
    "off": _off,
    "metrics": _metrics,
    "metrics+traces": _metrics_and_traces,
    "+traces 10%": lambda: _metrics_and_traces(0.1),
}


async def _send(base_url: str, token: str, n: int) -> int:
    items = [(f"conv_{i % CONVERSATIONS + 1:04d}", f"message {i}") for i in range(n)]
    async with OpenTrainClient(token, base_url) as client:
        report = await client.send_all(items)
    return report.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the rounds here")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with fake_server(("--conversations", str(CONVERSATIONS), "--seed", "7")) as server:
        asyncio.run(_send(server.base_url, server.token, 500))  # warm up
        for round_no in range(args.rounds):
            # Rotate the order each round so no variant always runs first (warm caches).
            names = list(VARIANTS)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in names:
                done = VARIANTS[name]()
                started = time.perf_counter()
                cpu = time.process_time()  # this process only: the server runs in its own
                sent = asyncio.run(_send(server.base_url, server.token, args.messages))
                cpu = time.process_time() - cpu
                elapsed = time.perf_counter() - started
                extra = done()
                assert sent == args.messages, (name, sent)
                row = {
                    "round": round_no + 1,
                    "seconds": elapsed,
                    "rate": sent / elapsed,
                    "cpu_seconds": cpu,
                    "per_cpu_second": sent / cpu,
                    **extra,
                }
                rows[name].append(row)
                print(
                    f"  round {round_no + 1} {name}: {sent / elapsed:,.0f} msg/s, "
                    f"{sent / cpu:,.0f} msg per client CPU second {extra}",
                    file=sys.stderr,
                )
    _off()
    print(
        f"{'variant':<16} {'msg/s':>7} {'vs off':>7} {'spread':>13}   "
        f"{'msg/CPU s':>9} {'vs off':>7} {'spread':>13}"
    )
    for name, runs in rows.items():
        cells = []
        for field in ("rate", "per_cpu_second"):
            ratios = [r[field] / off[field] for r, off in zip(runs, rows["off"], strict=True)]
            cells.append(
                f"{statistics.median(r[field] for r in runs):>9,.0f} "
                f"{statistics.median(ratios):>6.3f}x {min(ratios):>5.3f}-{max(ratios):.3f}x"
            )
        print(f"{name:<16} {cells[0]}   {cells[1]}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
