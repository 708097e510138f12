"""Telemetry: OpenTelemetry metrics and traces, request log records, long-pause warnings.

The one home of everything the SDK reports about itself.  Call sites make one-line calls
into it; this module decides whether anyone listens.  Like an instrumentation library, it
reports through the *global* ``MeterProvider`` and ``TracerProvider`` (the ``otel`` extra
installs ``opentelemetry-api`` only; the application brings the SDK and exporters).
When no provider is set up, or ``opentelemetry-api`` is not installed at all, every hook
returns after a check or two: no span, no attribute dict, no lock.

What is reported (``docs/telemetry.md`` has the full table and a panel set):

* HTTP client spans and the ``http.client.request.duration`` histogram under the
  OpenTelemetry semantic conventions (``http.request.method``,
  ``http.response.status_code``, ``server.address``, ``url.template``, ``error.type``).
* One span per message (``opentrain.message.send``) covering its attempts, pacer waits
  and read-back; the HTTP attempts are its children, a pause it caused is an event.
* ``opentrain.*`` counters (outcomes by kind, requests by status, 429s, retries,
  read-backs, pacing fallbacks, journal commits, pauses) kept as plain integers here and
  reported through observable instruments, so counting costs a dict increment; gauges of
  each live client's pacer (learned limit, current rate, pause) and of requests in flight
  and queued for the pacer; a histogram of pacer waits.

Never in an attribute: the token, a password, message content.  Conversation ids only
when ``OPENTRAIN_TELEMETRY_CONVERSATION_IDS=1`` (they identify people's conversations).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from ._version import __version__

try:  # the `otel` extra: without it every hook below is a check and a return
    from opentelemetry import context as _otel_context
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
    from opentelemetry.metrics import _internal as _otel_metrics_globals
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised by the no-otel test in a subprocess
    _otel_metrics = None  # type: ignore[assignment]
    _otel_trace = None  # type: ignore[assignment]

__all__ = [
    "CONVERSATION_IDS_ENV_VAR",
    "LONG_PAUSE",
    "acquire",
    "attempt",
    "count",
    "counted",
    "journal_commit",
    "message_end",
    "message_start",
    "outcome",
    "pause",
    "read_back",
    "request_end",
    "request_start",
    "watch",
]

logger = logging.getLogger("opentrain_async")

CONVERSATION_IDS_ENV_VAR = "OPENTRAIN_TELEMETRY_CONVERSATION_IDS"
"""Set to ``1`` to put conversation ids on message spans (off by default)."""

LONG_PAUSE = 5.0
"""A pause of the whole client this long or longer is logged as a WARNING."""

SCOPE = "opentrain_async"

_ATTEMPT: ContextVar[int] = ContextVar("opentrain_attempt", default=1)
_PAUSED: ContextVar[bool] = ContextVar("opentrain_paused", default=False)
"""Set in a message's task when its 429 paused the client: its next attempt, admitted
after the pause, marks the pause's end on the message span."""

# Seconds: request latencies on a LAN to a slow API; pacer waits up to a long pause.
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


class _Outcome(Protocol):
    @property
    def kind(self) -> str: ...


_T = TypeVar("_T", bound=_Outcome)


# -- who listens ---------------------------------------------------------------------------


def _is_real(provider: object) -> bool:
    """A provider an application set up (not the API's proxy or no-op default)."""
    name = type(provider).__name__
    return provider is not None and not name.startswith(("_Proxy", "Proxy", "NoOp"))


class _Metrics:
    """The instruments on one (real) meter provider and the totals they report.

    Counters are plain integers here, read by observable instruments at collection
    time: a hook costs a dict increment, not an SDK measurement.  A new provider (an
    application setting one up late, or a test) gets new instruments counting from 0.
    """

    def __init__(self, provider: Any) -> None:
        meter = provider.get_meter(SCOPE, __version__)
        self.outcomes: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str, int | None]] = Counter()
        self.counts: Counter[str] = Counter()
        self.read_backs: Counter[str] = Counter()
        self.queued = 0
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
        updown = meter.create_observable_up_down_counter
        updown(
            "http.client.active_requests",
            [_in_flight],
            unit="{request}",
            description="Requests on the wire right now.",
        )
        updown(
            "opentrain.pacer.queued",
            [self._queued],
            unit="{request}",
            description="Requests waiting for the pacer right now.",
        )

    def _outcomes(self, options: Any) -> Iterator[Any]:
        for kind, value in self.outcomes.copy().items():
            yield _otel_metrics.Observation(value, {"opentrain.outcome": kind})

    def _requests(self, options: Any) -> Iterator[Any]:
        for (method, template, status), value in self.requests.copy().items():
            attributes: dict[str, Any] = {"http.request.method": method, "url.template": template}
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
    taken = {entry[2] for entry in _live}
    number = next(str(n) for n in range(1, len(_live) + 2) if str(n) not in taken)
    _live.append((weakref.ref(pacer), weakref.ref(stats), number))
    _current_metrics()  # the gauges exist from the client's creation on


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


# -- one HTTP attempt ----------------------------------------------------------------------


def _template(path: str) -> str:
    """The route of a path: ids in it replaced (``/proposals/{proposalId}/conversation``),
    a query string (``client.request("GET", "/messages?conversationId=...")``) cut off."""
    if path.startswith("/proposals/"):
        return "/proposals/{proposalId}/conversation"
    return path.partition("?")[0] if "?" in path else path


class _Request:
    __slots__ = ("attempt", "method", "metrics", "path", "span", "started")

    def __init__(self, method: str, path: str, metrics: _Metrics | None, span: Any) -> None:
        self.method = method
        self.path = path
        self.metrics = metrics
        self.span = span
        self.attempt = _ATTEMPT.get()
        self.started = time.perf_counter()


def _sampled_or_root() -> bool:
    parent = _otel_trace.get_current_span()
    return parent.is_recording() or not parent.get_span_context().is_valid


def request_start(method: str, path: str, host: str | None, port: int | None) -> _Request | None:
    """An HTTP attempt is about to go on the wire; None when nobody listens."""
    metrics = _current_metrics()
    tracer = _current_tracer()
    if metrics is None and tracer is None and not logger.isEnabledFor(logging.DEBUG):
        return None
    span = None
    # Under a message span that was not sampled, its HTTP children would not be either
    # (ParentBased, the SDK's default): they are not even started.
    if tracer is not None and _sampled_or_root():
        template = _template(path)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.template": template,
            "server.address": host or "",
        }
        if port is not None:
            attributes["server.port"] = port
        attempt = _ATTEMPT.get()
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        if _PAUSED.get():  # this message's 429 paused the client; admitted again now
            _PAUSED.set(False)
            _otel_trace.get_current_span().add_event("opentrain.pause.end")
        span = tracer.start_span(
            f"{method} {template}", kind=SpanKind.CLIENT, attributes=attributes
        )
    return _Request(method, path, metrics, span)


_attribute_sets: dict[tuple[str, str, int | None, str | None], dict[str, Any]] = {}


def _duration_attributes(
    key: tuple[str, str, int | None], error_type: str | None
) -> dict[str, Any]:
    """The duration histogram's attributes for one kind of answer, built once."""
    method, template, status = key
    found = _attribute_sets.get((method, template, status, error_type))
    if found is None:
        found = {"http.request.method": method, "url.template": template}
        if status is not None:
            found["http.response.status_code"] = status
        if error_type is not None:
            found["error.type"] = error_type
        if len(_attribute_sets) < 1000:  # statuses and error names: a small set
            _attribute_sets[(method, template, status, error_type)] = found
    return found


def request_end(
    request: _Request | None,
    status: int | None,
    request_id: str | None,
    error: BaseException | None = None,
) -> None:
    """The attempt ended: an answer with ``status``, or ``error`` before one."""
    if request is None:
        return
    seconds = time.perf_counter() - request.started
    method = request.method
    error_type = (
        type(error).__name__
        if error is not None
        else str(status)
        if status is not None and status >= 400
        else None
    )
    metrics = request.metrics
    if metrics is not None:
        key = (method, _template(request.path), status)
        metrics.requests[key] += 1
        if status == 429:
            metrics.counts["opentrain.rate_limited"] += 1
        metrics.request_duration.record(seconds, _duration_attributes(key, error_type))
    span = request.span
    if span is not None and span.is_recording():
        attributes: dict[str, Any] = {}
        if status is not None:
            attributes["http.response.status_code"] = status
        if request_id is not None:
            attributes["http.response.header.x-request-id"] = (request_id,)
        if error_type is not None:
            attributes["error.type"] = error_type
            span.set_status(Status(StatusCode.ERROR))
        span.set_attributes(attributes)  # one call: each takes the span's lock
    if span is not None:
        span.end()
    if logger.isEnabledFor(logging.DEBUG):
        duration_ms = round(seconds * 1000, 1)
        logger.debug(
            "%s %s -> %s in %.1fms%s request_id=%s",
            method,
            request.path,
            status if status is not None else error_type,
            duration_ms,
            f" (attempt {request.attempt})" if request.attempt > 1 else "",
            request_id,
            extra={
                "method": method,
                "path": request.path,
                "status": status,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "attempt": request.attempt,
            },
        )


@contextlib.contextmanager
def attempt(number: int) -> Iterator[None]:
    """The retry policy's attempt ``number`` (2 and up) runs inside this block."""
    metrics = _current_metrics()
    if metrics is not None and number > 1:
        metrics.counts["opentrain.retries"] += 1
    token = _ATTEMPT.set(number)
    try:
        yield
    finally:
        _ATTEMPT.reset(token)


# -- pacing --------------------------------------------------------------------------------


async def acquire(pacer: Any) -> float:
    """``await pacer.acquire()``, timed and counted as queued (the pacer's slow path)."""
    metrics = _current_metrics()
    if metrics is None:
        admitted: float = await pacer.acquire()
        return admitted
    started = time.perf_counter()
    metrics.queued += 1
    try:
        admitted = await pacer.acquire()
    finally:
        metrics.queued -= 1
    metrics.pacer_wait.record(time.perf_counter() - started)
    return admitted


_announced = float("-inf")
"""The end of the last pause a WARNING announced (its client's clock)."""


def pause(
    now: float, before: float, until: float, retry_after: float | None, shared: bool = False
) -> None:
    """A 429 set the pacer's pause to end at ``until`` (was ``before``; local clock);
    ``shared``: one that another client sharing the pacing state (Redis) was answered.

    A pause that becomes ``LONG_PAUSE`` or longer logs one WARNING saying why and until
    when, and again if it is moved that much past the end announced (never one per 429);
    every new or longer pause is a span event on the request's message span.
    """
    seconds = until - now
    if seconds <= 0 or until <= before:
        return
    global _announced
    fresh = before - now < LONG_PAUSE  # no pause, or a short one: a long one begins
    warned = seconds >= LONG_PAUSE and fresh
    if seconds >= LONG_PAUSE and (fresh or until - _announced >= LONG_PAUSE):
        _announced = until
        wall = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        hint = f"{retry_after:g} s" if retry_after is not None else "none"
        logger.warning(
            "paused every send for %.0f s, until %s UTC: the server answered 429 %s",
            seconds,
            wall.strftime("%H:%M:%S"),
            "to a client sharing this pacing state" if shared else f"(wait hint taken: {hint})",
            extra={"pause_seconds": round(seconds, 3), "retry_after": retry_after},
        )
    metrics = _current_metrics()
    if metrics is not None and (before <= now or warned):  # each warning is a pause begun
        metrics.counts["opentrain.pacer.pauses"] += 1
    if _otel_trace is not None:
        span = _otel_trace.get_current_span()
        if span.is_recording():
            attributes: dict[str, Any] = {"opentrain.pause.seconds": seconds}
            if retry_after is not None:
                attributes["opentrain.retry_after"] = retry_after
            span.add_event("opentrain.pause.start", attributes)
            _PAUSED.set(True)


def count(name: str, amount: int = 1) -> None:
    """Add to one of the plain ``opentrain.*`` counters (``opentrain.pacing.fallbacks``...)."""
    metrics = _current_metrics()
    if metrics is not None:
        metrics.counts[name] += amount


def journal_commit(records: int) -> None:
    """A journal write of ``records`` records became durable."""
    metrics = _current_metrics()
    if metrics is not None:
        metrics.counts["opentrain.journal.commits"] += 1
        metrics.counts["opentrain.journal.records"] += records


def read_back(found: bool) -> None:
    """A read-back after an unknown outcome ended: the message was found, or not."""
    metrics = _current_metrics()
    if metrics is not None:
        metrics.read_backs["found" if found else "not_found"] += 1
    if _otel_trace is not None:
        span = _otel_trace.get_current_span()
        if span.is_recording():
            span.add_event("opentrain.read_back", {"opentrain.read_back.found": found})


# -- one message ---------------------------------------------------------------------------


class _Message:
    __slots__ = ("metrics", "span", "token")

    def __init__(self, metrics: _Metrics | None, span: Any, token: object) -> None:
        self.metrics = metrics
        self.span = span
        self.token = token


def message_start() -> _Message | None:
    """A message's work begins (validation, waits, attempts, read-back): its span is
    made current, so HTTP attempts become its children.  None when nobody listens."""
    metrics = _current_metrics()
    tracer = _current_tracer()
    if tracer is None:
        return None if metrics is None else _Message(metrics, None, None)
    _PAUSED.set(False)  # a pause seen by the worker's last message is not this one's
    span = tracer.start_span("opentrain.message.send", kind=SpanKind.INTERNAL)
    token = _otel_context.attach(_otel_trace.set_span_in_context(span))
    return _Message(metrics, span, token)


def message_end(
    message: _Message | None,
    kind: str | None,
    *,
    conversation_id: str | None = None,
    reconciled: bool = False,
) -> None:
    """The message's one outcome is ``kind`` (``sent``, ``delivery_unknown``, ...);
    None: it has none (cancelled), so only its span ends."""
    if message is None:
        return
    metrics = message.metrics
    if metrics is not None and kind is not None:
        # No histogram of message durations: an SDK measurement costs more than the rest
        # of this hook together (benchmarks/telemetry.py); the message span has it.
        metrics.outcomes[kind] += 1
    span = message.span
    if span is None:
        return
    if not span.is_recording():  # not sampled
        span.end()
        with contextlib.suppress(Exception):
            _otel_context.detach(message.token)  # type: ignore[arg-type]
        return
    if kind is None:
        span.add_event("opentrain.cancelled")
    else:
        span.set_attribute("opentrain.outcome", kind)
    if reconciled:
        span.set_attribute("opentrain.reconciled", True)
    if kind not in ("sent", None):
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR))
    if conversation_id is not None and os.environ.get(CONVERSATION_IDS_ENV_VAR) == "1":
        span.set_attribute("opentrain.conversation.id", conversation_id)
    span.end()
    with contextlib.suppress(Exception):
        _otel_context.detach(message.token)  # type: ignore[arg-type]


def counted(result: _T) -> _T:
    """``result``, a bulk ``SendOutcome`` that had no message span (blocked, or left
    unsent when the loop ended), counted: the outcomes sum to the inputs that have one."""
    metrics = _current_metrics()
    if metrics is not None:
        metrics.outcomes[result.kind] += 1
    return result


def outcome(message: _Message | None, result: Any) -> None:
    """``message_end`` for a bulk ``SendOutcome``."""
    if message is None:
        return
    sent = result.message
    conversation_id = getattr(sent if sent is not None else result.error, "conversation_id", None)
    message_end(message, result.kind, conversation_id=conversation_id, reconciled=result.reconciled)
