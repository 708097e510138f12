"""Telemetry: OpenTelemetry metrics and traces, request log records, long-pause warnings.

The one home of everything the SDK reports about itself.  Call sites make one-line calls
into it; this module decides whether anyone listens (the instruments themselves, the
provider lookup and the gauges are in ``_telemetry_instruments``).  Like an
instrumentation library, it reports through the *global* ``MeterProvider`` and
``TracerProvider`` (the ``otel`` extra installs ``opentelemetry-api`` only; the
application brings the SDK and exporters).
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
  and queued for the pacer; a histogram of pacer waits.  The two histograms are the
  only SDK calls on the request path, made in runs (``_Metrics.record``).

Never in an attribute: the token, a password, message content.  Conversation ids only
when ``OPENTRAIN_TELEMETRY_CONVERSATION_IDS=1`` (they identify people's conversations).
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from ._telemetry_instruments import (
    _current_metrics,
    _current_tracer,
    _Metrics,
    _template,
    unwatch,
    watch,
)

try:  # the `otel` extra: without it every hook below is a check and a return
    from opentelemetry import context as _otel_context
    from opentelemetry import metrics as _otel_metrics  # the no-otel test reads it
    from opentelemetry import trace as _otel_trace
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
    "resent",
    "unwatch",
    "watch",
]

logger = logging.getLogger("opentrain_async")

CONVERSATION_IDS_ENV_VAR = "OPENTRAIN_TELEMETRY_CONVERSATION_IDS"
"""Set to ``1`` to put conversation ids on message spans (off by default)."""

LONG_PAUSE = 5.0
"""A pause of the whole client this long or longer is logged as a WARNING."""

_ATTEMPT: ContextVar[int] = ContextVar("opentrain_attempt", default=1)
_RESENT: ContextVar[int] = ContextVar("opentrain_resent", default=0)
"""Attempts of this input before the current retry loop (the bulk engine's resends)."""
_PAUSED: ContextVar[bool] = ContextVar("opentrain_paused", default=False)
"""Set in a message's task when its 429 paused the client: its next attempt, admitted
after the pause, marks the pause's end on the message span."""


# -- one HTTP attempt ----------------------------------------------------------------------


class _Request:
    __slots__ = ("method", "metrics", "path", "route", "span", "started")

    def __init__(self, method: str, path: str, metrics: _Metrics | None) -> None:
        self.method = method
        self.path = path
        self.metrics = metrics
        self.route = metrics.route(method, path) if metrics is not None else None
        self.span: Any = None
        self.started = time.perf_counter()


def request_start(method: str, path: str, host: str | None, port: int | None) -> _Request | None:
    """An HTTP attempt is about to go on the wire; None when nobody listens."""
    metrics = _current_metrics()
    tracer = _current_tracer()
    if tracer is None:
        if metrics is None and not logger.isEnabledFor(logging.DEBUG):
            return None
        return _Request(method, path, metrics)
    # Under a message span that was not sampled, its HTTP children would not be either
    # (ParentBased, the SDK's default): they are not even started.
    parent = _otel_trace.get_current_span()
    request = _Request(method, path, metrics)
    if not parent.is_recording() and parent.get_span_context().is_valid:
        return request
    template = _template(path)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.template": template,
        "server.address": host or "",
    }
    if port is not None:
        attributes["server.port"] = port
    attempt = _ATTEMPT.get() + _RESENT.get()
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    if _PAUSED.get():  # this message's 429 paused the client; admitted again now
        _PAUSED.set(False)
        parent.add_event("opentrain.pause.end")
    request.span = tracer.start_span(
        f"{method} {template}", kind=SpanKind.CLIENT, attributes=attributes
    )
    return request


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
    error_type = (
        type(error).__name__
        if error is not None
        else str(status)
        if status is not None and status >= 400
        else None
    )
    metrics, route = request.metrics, request.route
    if metrics is not None and route is not None:
        route.requests[status] += 1
        if status == 429:
            metrics.counts["opentrain.rate_limited"] += 1
        # The one SDK call of a request, made in a run of them (most of the cost).
        metrics.record(
            metrics.request_duration,
            seconds,
            route.attributes(status, error_type),
            request.span is not None,  # its message span was sampled, or it is a root
        )
    span = request.span
    if span is not None:
        if span.is_recording():
            _end_http_span(span, status, request_id, error_type)
        span.end()
    if logger.isEnabledFor(logging.DEBUG):
        _log_request(request, status, request_id, error_type, seconds)


def _end_http_span(
    span: Any, status: int | None, request_id: str | None, error_type: str | None
) -> None:
    attributes: dict[str, Any] = {}
    if status is not None:
        attributes["http.response.status_code"] = status
    if request_id is not None:
        attributes["http.response.header.x-request-id"] = (request_id,)
    if error_type is not None:
        attributes["error.type"] = error_type
        span.set_status(Status(StatusCode.ERROR))
    span.set_attributes(attributes)  # one call: each takes the span's lock


def _log_request(
    request: _Request,
    status: int | None,
    request_id: str | None,
    error_type: str | None,
    seconds: float,
) -> None:
    """The request's DEBUG record, its fields as record attributes."""
    duration_ms = round(seconds * 1000, 1)
    attempt = _ATTEMPT.get() + _RESENT.get()  # the attempt's task: as at its start
    method = request.method
    logger.debug(
        "%s %s -> %s in %.1fms%s request_id=%s",
        method,
        request.path,
        status if status is not None else error_type,
        duration_ms,
        f" (attempt {attempt})" if attempt > 1 else "",
        request_id,
        extra={
            "method": method,
            "path": request.path,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
            "attempt": attempt,
        },
    )


class _Attempt:
    """The retry policy's attempt ``number`` (2 and up) runs inside this block
    (a class, not ``contextlib.contextmanager``: no generator per attempt)."""

    __slots__ = ("number", "token")

    def __init__(self, number: int) -> None:
        self.number = number

    def __enter__(self) -> None:
        metrics = _current_metrics()
        if metrics is not None and self.number > 1:
            metrics.counts["opentrain.retries"] += 1
        self.token = _ATTEMPT.set(self.number)

    def __exit__(self, *exc_info: object) -> None:
        _ATTEMPT.reset(self.token)


attempt = _Attempt


class _Resent:
    """The bulk engine sends an input again after ``before`` attempts (its retry budget
    spent on 429s): the attempts inside are numbered on from those."""

    __slots__ = ("before", "token")

    def __init__(self, before: int) -> None:
        self.before = before

    def __enter__(self) -> None:
        self.token = _RESENT.set(self.before)

    def __exit__(self, *exc_info: object) -> None:
        _RESENT.reset(self.token)


resent = _Resent


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
    waited = time.perf_counter() - started
    metrics.record(metrics.pacer_wait, waited, None, _current_tracer() is not None)
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
        if metrics is None:
            return None
        if metrics.untraced is None:  # metrics only: one shared handle, nothing per message
            metrics.untraced = _Message(metrics, None, None)
        untraced: _Message = metrics.untraced
        return untraced
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
    if span.is_recording():  # sampled
        _end_message_span(span, kind, conversation_id, reconciled)
    span.end()
    _otel_context.detach(message.token)  # type: ignore[arg-type]  # never raises: logs


def _end_message_span(
    span: Any, kind: str | None, conversation_id: str | None, reconciled: bool
) -> None:
    attributes: dict[str, Any] = {}
    if kind is None:
        span.add_event("opentrain.cancelled")
    else:
        attributes["opentrain.outcome"] = kind
    if reconciled:
        attributes["opentrain.reconciled"] = True
    if kind not in ("sent", None):
        attributes["error.type"] = kind
        span.set_status(Status(StatusCode.ERROR))
    if conversation_id is not None and os.environ.get(CONVERSATION_IDS_ENV_VAR) == "1":
        attributes["opentrain.conversation.id"] = conversation_id
    span.set_attributes(attributes)  # one call: each takes the span's lock


class _Outcome(Protocol):
    @property
    def kind(self) -> str: ...


_T = TypeVar("_T", bound=_Outcome)


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
    metrics = message.metrics
    if message.span is None and metrics is not None:  # metrics only: just the count
        metrics.outcomes[result.kind] += 1
        return
    sent = result.message
    conversation_id = getattr(sent if sent is not None else result.error, "conversation_id", None)
    message_end(message, result.kind, conversation_id=conversation_id, reconciled=result.reconciled)
