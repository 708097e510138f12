"""The OpenTelemetry instruments behind ``_telemetry``'s hooks, and who listens.

Finds the global ``MeterProvider`` and ``TracerProvider`` (a real one an application set
up, or none), creates the SDK's instruments on a meter provider once, and reports each
live client's pacer and in-flight count as gauges.  The hooks in ``_telemetry`` are the
only callers.
"""

from __future__ import annotations

import os
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ._version import __version__

try:  # the `otel` extra: without it every hook is a check and a return
    from opentelemetry import context as _otel_context
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.metrics import _internal as _otel_metrics_globals

    _NO_SPAN = _otel_context.Context({"opentrain_async.no_span": True})
    """A measurement's context when none was current: not empty (the SDK would take the
    context current when it is recorded), and without a span (so no exemplar)."""
except ImportError:  # pragma: no cover - exercised by the no-otel test in a subprocess
    _otel_metrics = None  # type: ignore[assignment]
    _otel_trace = None  # type: ignore[assignment]

SCOPE = "opentrain_async"

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _PacerView(Protocol):
    """What the gauges read of a pacer (``_pacing.Pacer``)."""

    def current_rate(self, now: float | None = None) -> float | None: ...

    def pause_remaining(self) -> float: ...

    @property
    def state(self) -> Any: ...


class _StatsView(Protocol):
    in_flight: int


# -- who listens ---------------------------------------------------------------------------


def _is_real(provider: object) -> bool:
    """A provider an application set up (not the API's proxy or no-op default)."""
    name = type(provider).__name__
    return provider is not None and not name.startswith(("_Proxy", "Proxy", "NoOp"))


_RUN = 256
"""Histogram measurements held back, then handed to the SDK in one run (see _Metrics)."""


def _template(path: str) -> str:
    """The route of a path: ids in it replaced (``/proposals/{proposalId}/conversation``),
    a query string (``client.request("GET", "/messages?conversationId=...")``) cut off."""
    if path.startswith("/proposals/"):
        return "/proposals/{proposalId}/conversation"
    return path.partition("?")[0] if "?" in path else path


class _Route:
    """One method and route (``POST /messages``): its requests by status, and the
    duration histogram's attributes for each kind of answer, built once and reused."""

    __slots__ = ("_attributes", "method", "requests", "template")

    def __init__(self, method: str, template: str) -> None:
        self.method = method
        self.template = template
        self.requests: Counter[int | None] = Counter()
        """By status; None: no answer (a connection error, a timeout, a cancel)."""
        self._attributes: dict[int | str | None, dict[str, Any]] = {}

    def attributes(self, status: int | None, error_type: str | None) -> dict[str, Any]:
        """The duration's attributes for an answer ``status``, or for ``error_type``
        raised before one: a handful of dicts, never one per request."""
        key = status if status is not None else error_type
        found = self._attributes.get(key)
        if found is None:
            found = {"http.request.method": self.method, "url.template": self.template}
            if status is not None:
                found["http.response.status_code"] = status
            if error_type is not None:
                found["error.type"] = error_type
            self._attributes[key] = found
        return found


class _Metrics:
    """The instruments on one (real) meter provider and the totals they report.

    Counters are plain integers here, read by observable instruments at collection
    time: a hook costs a dict increment, not an SDK measurement.  The two histograms
    (request duration, pacer wait) need the SDK's ``record``, once per measurement: on
    the request path, between sends, a record costs about three times what it costs in
    a run of them (measured: 33 us against 14 us per record, load 7; its many frames
    fall out of the CPU's caches in between).  So measurements wait in ``pending`` and
    are recorded ``_RUN`` at a time, and every collection first records what is
    pending (``_requests``), so that a reader never misses one; each keeps the context
    current when it was taken, for exemplars.  A new provider (an application setting
    one up late, or a test) gets new instruments counting from 0.
    """

    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter(SCOPE, __version__)
        self.outcomes: Counter[str] = Counter()
        self.routes: dict[tuple[str, str], _Route] = {}
        self.counts: Counter[str] = Counter()
        self.read_backs: Counter[str] = Counter()
        self.queued = 0
        self.untraced: Any = None
        self.pending: deque[tuple[Any, float, dict[str, Any] | None, Any]] = deque()
        """The one message handle of every message while no tracer listens (_telemetry)."""
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.pacer_wait = meter.create_histogram(
            "opentrain.pacer.wait.duration",
            unit="s",
            description="Time a request waited for the pacer (waits only: most requests "
            "are admitted at once and not recorded).",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self._observe_counters(meter)
        _observe_clients(meter)
        meter.create_observable_up_down_counter(
            "opentrain.pacer.queued",
            [self._queued],
            unit="{request}",
            description="Requests waiting for the pacer right now.",
        )

    def record(
        self, histogram: Any, value: float, attributes: dict[str, Any] | None, traced: bool
    ) -> None:
        """``histogram.record(value, attributes)``, soon: in a run of ``_RUN``, or at the
        next collection, whichever comes first.  ``traced``: a sampled span may be
        current, so the context is kept for the exemplar (else none is possible, as
        far as our tracer knows, and the context is not even looked up)."""
        context = (_otel_context.get_current() or _NO_SPAN) if traced else _NO_SPAN
        pending = self.pending
        pending.append((histogram, value, attributes, context))
        if len(pending) >= _RUN:
            self.flush()

    def flush(self) -> None:
        """Record every pending measurement (the event loop's thread, or a reader's)."""
        pending = self.pending
        while True:
            try:
                histogram, value, attributes, context = pending.popleft()
            except IndexError:  # deque operations are atomic: each one is taken once
                return
            histogram.record(value, attributes, context)

    def route(self, method: str, path: str) -> _Route:
        """The route of ``method path`` (ids in the path replaced), cached by path."""
        route = self.routes.get((method, path))
        if route is None:
            template = _template(path)
            route = self.routes.get((method, template))
            if route is None:
                route = self.routes[(method, template)] = _Route(method, template)
            if len(self.routes) < 256:  # paths with ids (proposals) are unbounded
                self.routes[(method, path)] = route
        return route

    def _observe_counters(self, meter: Any) -> None:
        observe = meter.create_observable_counter
        observe(
            "opentrain.outcomes",
            [self._outcomes],
            unit="{message}",
            description="Messages by outcome kind (sent, delivery_unknown, a failure reason).",
        )
        observe(
            "opentrain.requests",
            [self._requests],
            unit="{request}",
            description="HTTP attempts by method, route and status (every retry counts).",
        )
        for name, unit, description in _COUNTS:
            observe(name, [self._count(name)], unit=unit, description=description)
        observe(
            "opentrain.read_backs",
            [self._read_backs],
            unit="{read_back}",
            description="Read-backs after an unknown outcome, by result.",
        )

    def _outcomes(self, options: Any) -> Iterator[Any]:
        for kind, value in self.outcomes.copy().items():
            yield _otel_metrics.Observation(value, {"opentrain.outcome": kind})

    def _requests(self, options: Any) -> Iterator[Any]:
        self.flush()  # before the reader reads the histograms (callbacks run first)
        for route in {id(route): route for route in list(self.routes.values())}.values():
            for status, value in route.requests.copy().items():
                attributes: dict[str, Any] = {
                    "http.request.method": route.method,
                    "url.template": route.template,
                }
                if status is not None:
                    attributes["http.response.status_code"] = status
                yield _otel_metrics.Observation(value, attributes)

    def _count(self, name: str) -> Callable[[Any], Iterator[Any]]:
        def callback(options: Any) -> Iterator[Any]:
            yield _otel_metrics.Observation(self.counts[name])

        return callback

    def _read_backs(self, options: Any) -> Iterator[Any]:
        for result, value in self.read_backs.copy().items():
            yield _otel_metrics.Observation(value, {"opentrain.read_back.result": result})

    def _queued(self, options: Any) -> Iterator[Any]:
        yield _otel_metrics.Observation(self.queued)


def _observe_clients(meter: Any) -> None:
    """The gauges of each live client: its pacer, and its requests on the wire."""
    gauge = meter.create_observable_gauge
    gauge(
        "opentrain.pacer.limit",
        [_pacer_gauge(lambda p: p.state.limit)],
        unit="{request}/s",
        description="The rate the pacer learned the server allows (absent until a 429).",
    )
    gauge(
        "opentrain.pacer.rate",
        [_pacer_gauge(lambda p: p.current_rate())],
        unit="{request}/s",
        description="The rate requests may start at right now (absent while unpaced).",
    )
    gauge(
        "opentrain.pacer.paused",
        [_pacer_gauge(lambda p: 1 if p.pause_remaining() > 0 else 0)],
        unit="1",
        description="1 while the client holds every request back after a 429.",
    )
    gauge(
        "opentrain.pacer.pause.remaining",
        [_pacer_gauge(lambda p: max(p.pause_remaining(), 0.0))],
        unit="s",
        description="Seconds left in the current pause (0 when not paused).",
    )
    meter.create_observable_up_down_counter(
        "http.client.active_requests",
        [_in_flight],
        unit="{request}",
        description="Requests on the wire right now.",
    )


_COUNTS = (
    ("opentrain.rate_limited", "{response}", "429 answers received."),
    ("opentrain.retries", "{retry}", "Waits before a retry (retry policy and bulk 429 waits)."),
    (
        "opentrain.pacing.fallbacks",
        "{fallback}",
        "Times the shared pacing store (Redis) was unreachable and the client paced alone.",
    ),
    ("opentrain.pacer.pauses", "{pause}", "Pauses of every request after a 429's hint."),
    ("opentrain.journal.commits", "{commit}", "Durable journal writes (group commits)."),
    ("opentrain.journal.records", "{record}", "Journal records made durable."),
)

# The API's getters look the environment up on every call while no provider is set (for
# OTEL_PYTHON_*_PROVIDER); without those variables, the globals they return are read
# directly, so that a process with no provider pays two attribute reads per hook.
_FAST = not {"OTEL_PYTHON_METER_PROVIDER", "OTEL_PYTHON_TRACER_PROVIDER"} & set(os.environ)


def _configured(get_provider: Callable[[], Any]) -> Any:
    """The API's getter, which loads ``OTEL_PYTHON_*_PROVIDER`` and raises (on every
    call, logging each time) when it names nothing installed: then, no provider."""
    global _FAST
    try:
        return get_provider()
    except Exception:  # the API logged why; from now on its globals are read directly
        _FAST = True
        return None


_meter_provider: object = None
_metrics: _Metrics | None = None


def _current_metrics() -> _Metrics | None:
    """The instruments on the global meter provider, or None when there is none."""
    global _meter_provider, _metrics
    if _otel_metrics is None:
        return None
    if _FAST:
        provider: Any = _otel_metrics_globals._METER_PROVIDER
        if provider is None:
            return None
    else:
        provider = _configured(_otel_metrics.get_meter_provider)
    if provider is not _meter_provider:
        _meter_provider = provider
        _metrics = _Metrics(provider) if _is_real(provider) else None
    return _metrics


_tracer_provider: object = None
_tracer: Any = None


def _current_tracer() -> Any:
    """The tracer of the global tracer provider, or None when there is none."""
    global _tracer_provider, _tracer
    if _otel_trace is None:
        return None
    if _FAST:
        provider: Any = _otel_trace._TRACER_PROVIDER
        if provider is None:
            return None
    else:
        provider = _configured(_otel_trace.get_tracer_provider)
    if provider is not _tracer_provider:
        _tracer_provider = provider
        _tracer = provider.get_tracer(SCOPE, __version__) if _is_real(provider) else None
    return _tracer


# -- live clients (the gauges) -------------------------------------------------------------

_live: list[tuple[weakref.ref[Any], weakref.ref[Any], str]] = []


def watch(pacer: _PacerView, stats: _StatsView) -> None:
    """Report this client's pacer and in-flight count in the gauges while it lives.

    Clients are numbered 1, 2, ... (``opentrain.client``), reusing the number of one
    that is gone: a bot opening a client per message keeps one series, not thousands.
    """
    _live[:] = [entry for entry in _live if entry[0]() is not None and entry[1]() is not None]
    if any(entry[1]() is stats for entry in _live):
        return  # reopened while still watched
    taken = {entry[2] for entry in _live}
    number = next(str(n) for n in range(1, len(_live) + 2) if str(n) not in taken)
    _live.append((weakref.ref(pacer), weakref.ref(stats), number))
    _current_metrics()  # the gauges exist from the client's creation on


def unwatch(stats: _StatsView) -> None:
    """Stop reporting the client whose counters are ``stats`` (it closed): its gauges
    end at ``close``, not whenever the garbage collector frees it, and its number is
    free for the next client."""
    _live[:] = [entry for entry in _live if entry[1]() not in (None, stats)]


def _live_pairs() -> Iterator[tuple[Any, Any, str]]:
    for pacer_ref, stats_ref, name in list(_live):
        pacer, stats = pacer_ref(), stats_ref()
        if pacer is not None and stats is not None:
            yield pacer, stats, name


def _pacer_gauge(read: Callable[[_PacerView], float | None]) -> Callable[[Any], Iterator[Any]]:
    def callback(options: Any) -> Iterator[Any]:
        for pacer, _, name in _live_pairs():
            value = read(pacer)
            if value is not None:
                yield _otel_metrics.Observation(value, {"opentrain.client": name})

    return callback


def _in_flight(options: Any) -> Iterator[Any]:
    for _, stats, name in _live_pairs():
        yield _otel_metrics.Observation(stats.in_flight, {"opentrain.client": name})
