"""What each telemetry call costs: ``python -m benchmarks.telemetry_calls``.

``benchmarks.telemetry`` measures whole sends, and on a shared machine its rounds differ
by a third; this measures the calls one message makes, alone, in CPU time per call
(the best of several repeats): our hooks for one message (``message_start``,
``request_start``, ``request_end``, ``outcome``) with no provider, with a meter
provider whose histogram records are dropped (the hooks' own work), and with them
recorded; the OpenTelemetry SDK's ``Histogram.record`` with the request duration's
three attributes, two, and none (a pacer wait); an unsampled ``start_span`` and the
context attach and detach around a message span.

``--only NAME --calls N`` runs one of them N times and prints nothing: run it under
``valgrind --tool=cachegrind --cache-sim=no`` with two values of N and divide the
difference of the instruction counts by the difference of N for a figure that load
does not move (``benchmarks/README.md``, "Telemetry per call").
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from opentrain_async import _telemetry, _telemetry_instruments

DURATION = {"http.request.method": "POST", "url.template": "/messages"}


class _Sent:
    """What ``outcome`` reads of a bulk ``SendOutcome``."""

    kind = "sent"
    message = None
    error = None
    reconciled = False


def _hooks(provider: Any, drop: bool) -> Callable[[int], None]:
    metrics_internal._METER_PROVIDER = provider
    trace._TRACER_PROVIDER = None
    if drop:  # the measurements are taken, queued and thrown away: the hooks alone
        metrics = _telemetry_instruments._current_metrics()
        assert metrics is not None
        metrics.flush = metrics.pending.clear  # type: ignore[method-assign]
    sent = _Sent()

    def run(calls: int) -> None:
        for _ in range(calls):
            message = _telemetry.message_start()
            request = _telemetry.request_start("POST", "/messages", "127.0.0.1", 8080)
            _telemetry.request_end(request, 201, "req_1", None)
            _telemetry.outcome(message, sent)

    return run


def _record(provider: Any, attributes: dict[str, Any] | None) -> Callable[[int], None]:
    histogram = provider.get_meter("bench").create_histogram("bench.duration", unit="s")
    no_span = context.Context({"bench": True})  # as _telemetry passes: no span, no lookup

    def run(calls: int) -> None:
        record = histogram.record
        for i in range(calls):
            record(0.01 + i * 1e-9, attributes, no_span)

    return run


def _tracer() -> Any:
    return TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))).get_tracer("bench")


def _start_span() -> Callable[[int], None]:
    tracer = _tracer()

    def run(calls: int) -> None:
        for _ in range(calls):
            tracer.start_span("opentrain.message.send", kind=SpanKind.INTERNAL)

    return run


def _attach() -> Callable[[int], None]:
    span = _tracer().start_span("opentrain.message.send")

    def run(calls: int) -> None:
        for _ in range(calls):
            context.detach(context.attach(trace.set_span_in_context(span)))

    return run


def _provider() -> MeterProvider:
    return MeterProvider(metric_readers=[PrometheusMetricReader()])


CASES: dict[str, tuple[str, Callable[[], Callable[[int], None]]]] = {
    "hooks-off": ("hooks of one message, no provider", lambda: _hooks(None, False)),
    "hooks-dropped": (
        "hooks of one message, records dropped",
        lambda: _hooks(_provider(), True),
    ),
    "hooks": ("hooks of one message, recorded", lambda: _hooks(_provider(), False)),
    "record3": (
        "Histogram.record, 3 attributes",
        lambda: _record(_provider(), {**DURATION, "http.response.status_code": 201}),
    ),
    "record2": (
        "Histogram.record, 2 attributes",
        lambda: _record(
            _provider(), {"http.request.method": "POST", "http.response.status_code": 201}
        ),
    ),
    "record0": ("Histogram.record, no attribute", lambda: _record(_provider(), None)),
    "start-span": ("start_span, not sampled", _start_span),
    "attach": ("context attach + detach", _attach),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", choices=list(CASES), help="run one case, print nothing")
    args = parser.parse_args()
    if args.only is not None:
        CASES[args.only][1]()(args.calls)
        return
    for name, (label, make) in CASES.items():
        run = make()
        run(1000)  # warm
        best = float("inf")
        for _ in range(args.repeats):
            started = time.process_time()
            run(args.calls)
            best = min(best, time.process_time() - started)
        print(f"{name:<14} {best / args.calls * 1e6:7.2f} us  {label}", flush=True)
    metrics_internal._METER_PROVIDER = None


if __name__ == "__main__":
    main()
