"""``bulk --metrics-port [HOST:]PORT``: serve the job's metrics to Prometheus while it runs.

Through OpenTelemetry's Prometheus exporter, not ``prometheus-client`` instruments of
our own: the SDK already reports every figure through the global ``MeterProvider``
(``opentrain_async._telemetry``), so the CLI only sets one up with the exporter's reader
and serves ``prometheus_client``'s default registry (which also carries the process's
CPU and memory).  One set of instruments, one naming (the exporter turns
``opentrain.outcomes`` into ``opentrain_outcomes_total``), nothing counted twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TextIO

from ._input import InputError
from ._options import StartError

__all__ = ["parse_address", "serving_metrics"]

_EXTRA = "pip install 'opentrain-async[prometheus]'"


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` (every interface, as Prometheus exporters do) or ``HOST:PORT``."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host or "[" in host:  # ``::1`` is not port 1 on host ``:``
        raise InputError(
            f"--metrics-port: an IPv6 host goes in brackets ([::1]:PORT), got {text!r}"
        )
    host = host or "0.0.0.0"  # noqa: S104 - a metrics endpoint is scraped from outside
    if not (port.isascii() and port.isdigit()):  # not int(): it takes "9_464", "+1", " 1"
        raise InputError(f"--metrics-port: expected [HOST:]PORT, got {text!r}")
    number = int(port)
    if not 0 <= number <= 65535:
        raise InputError(f"--metrics-port: the port must be 0-65535, got {number}")
    return host, number


@contextlib.contextmanager
def serving_metrics(address: str | None, err: TextIO) -> Iterator[None]:
    """Serve ``/metrics`` on ``address`` for the duration of the block (None: nothing)."""
    if address is None:
        yield
        return
    host, port = parse_address(address)
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise StartError(f"--metrics-port needs {exc.name or 'its packages'}: {_EXTRA}") from None
    try:
        server, thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise StartError(
            f"--metrics-port {address}: cannot listen: {exc.strerror or exc}"
        ) from None
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    shown = f"[{host}]" if ":" in host else host
    print(f"serving Prometheus metrics on http://{shown}:{server.server_port}/metrics", file=err)
    err.flush()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        provider.shutdown()
