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
  and queued for the pacer; a histogram of pacer waits.

Never in an attribute: the token, a password, message content.  Conversation ids only
when ``OPENTRAIN_TELEMETRY_CONVERSATION_IDS=1`` (they identify people's conversations).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from typing import Any

from ._telemetry_instruments import (
    _current_metrics,
    _current_tracer,
    _Metrics,
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

_ATTEMPT: ContextVar[int] = ContextVar("opentrain_attempt", default=1)
_PAUSED: ContextVar[bool] = ContextVar("opentrain_paused", default=False)
"""Set in a message's task when its 429 paused the client: its next attempt, admitted
after the pause, marks the pause's end on the message span."""


# -- one HTTP attempt ----------------------------------------------------------------------


def _template(path: str) -> str:
    """The route of a path: ids in it replaced (``/proposals/{proposalId}/conversation``)."""
    if path.startswith("/proposals/"):
        return "/proposals/{proposalId}/conversation"
    return path


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


def pause(now: float, before: float, until: float, retry_after: float | None) -> None:
    """A 429 set the pacer's pause to end at ``until`` (was ``before``; local clock).

    A pause that becomes ``LONG_PAUSE`` or longer logs one WARNING saying why and until
    when; every new or longer pause is a span event on the request's message span.
    """
    seconds = until - now
    if seconds <= 0 or until <= before:
        return
    if seconds >= LONG_PAUSE and before - now < LONG_PAUSE:
        wall = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        hint = f"{retry_after:g} s" if retry_after is not None else "none"
        logger.warning(
            "paused every send for %.0f s, until %s UTC: the server answered 429 "
            "(wait hint taken: %s)",
            seconds,
            wall.strftime("%H:%M:%S"),
            hint,
            extra={"pause_seconds": round(seconds, 3), "retry_after": retry_after},
        )
    metrics = _current_metrics()
    if metrics is not None and before <= now:
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


def outcome(message: _Message | None, result: Any) -> None:
    """``message_end`` for a bulk ``SendOutcome``."""
    if message is None:
        return
    sent = result.message
    conversation_id = getattr(sent if sent is not None else result.error, "conversation_id", None)
    message_end(message, result.kind, conversation_id=conversation_id, reconciled=result.reconciled)
