"""Webhook deliveries: signature verification and an aiohttp.web handler.

OpenTrain POSTs one /updates event record per delivery, signed in the header
``X-OpenTrain-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the hex
HMAC-SHA256 of ``"<t>.<raw body>"`` under the endpoint's secret.  Verify the raw bytes
before parsing anything, within a tolerance window (5 minutes), with a constant-time
compare.  Retries reuse ``X-OpenTrain-Delivery``, so the handler dedupes on it.

The recommended pattern is webhook as the trigger and /updates (``listen()``) as the
source of truth: a lost or failed delivery is then never a lost message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._errors import ConfigurationError, UnexpectedResponseError, WebhookVerificationError
from ._json import json_loads
from ._read_models import Event, parse_event
from ._seen import RecentSet

__all__ = [
    "DEFAULT_TOLERANCE",
    "WebhookHandler",
    "parse_webhook_event",
    "sign_webhook_payload",
    "verify_webhook_signature",
    "webhook_handler",
]

logger = logging.getLogger("opentrain_async")

DEFAULT_TOLERANCE = 300.0
"""Seconds a signature's timestamp may differ from now (the docs' 5 minutes)."""

SIGNATURE_HEADER = "X-OpenTrain-Signature"
DELIVERY_HEADER = "X-OpenTrain-Delivery"
EVENT_HEADER = "X-OpenTrain-Event"
_MAX_TIMESTAMP_DIGITS = 15
"""Unix seconds have 10 digits until 2286; 15 still converts to a float exactly."""


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, got {type(value).__name__}")


def _digest(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign_webhook_payload(
    secret: str | bytes, raw_body: str | bytes, *, timestamp: int | None = None
) -> str:
    """The ``X-OpenTrain-Signature`` value OpenTrain would send for ``raw_body``.

    For tests of your own webhook endpoint (and the fake server); ``timestamp``
    defaults to now.
    """
    t = str(int(time.time()) if timestamp is None else int(timestamp))
    return f"t={t},v1={_digest(_as_bytes(secret, 'secret'), t, _as_bytes(raw_body, 'raw_body'))}"


def _check_tolerance(tolerance: float) -> float:
    """A finite, non-negative number of seconds (NaN would accept any timestamp)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise ConfigurationError(f"tolerance must be a number of seconds, got {tolerance!r}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ConfigurationError(
            f"tolerance must be a finite number of seconds >= 0, got {tolerance!r}"
        )
    return float(tolerance)


def _parse_header(header: str) -> tuple[str, list[str]]:
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookVerificationError(
                f"malformed {SIGNATURE_HEADER}: {part.strip()[:40]!r} is not key=value",
                reason="malformed",
            )
        key, value = key.strip(), value.strip()
        if key == "t":
            if (
                timestamp is not None
                or not value.isascii()
                or not value.isdigit()
                or len(value) > _MAX_TIMESTAMP_DIGITS
            ):
                raise WebhookVerificationError(
                    f"malformed {SIGNATURE_HEADER}: bad or repeated timestamp", reason="malformed"
                )
            timestamp = value
        elif key == "v1":
            signatures.append(value.lower())
        # other schemes (v0, future v2) are ignored, as signature schemes usually are
    if timestamp is None:
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: no t=<unix seconds>", reason="malformed"
        )
    if not signatures:
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: no v1=<hex> signature", reason="malformed"
        )
    return timestamp, signatures


def verify_webhook_signature(
    secret: str | bytes,
    raw_body: str | bytes,
    signature_header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check a delivery's ``X-OpenTrain-Signature``; return its timestamp (unix seconds).

    ``raw_body`` must be the bytes exactly as received (``await request.read()``), not
    re-serialised JSON.  Raises ``WebhookVerificationError`` with ``reason`` ``missing``,
    ``malformed``, ``stale`` (outside ``tolerance`` seconds of ``now``, either way) or
    ``mismatch``.  Several ``v1`` entries are accepted (secret rotation): one must match.
    """
    secret_bytes = _as_bytes(secret, "secret")
    if not secret_bytes:
        raise ConfigurationError("the webhook secret is empty")
    tolerance = _check_tolerance(tolerance)
    body = _as_bytes(raw_body, "raw_body")
    if signature_header is None or not signature_header.strip():
        raise WebhookVerificationError(f"no {SIGNATURE_HEADER} header", reason="missing")
    timestamp, signatures = _parse_header(signature_header)
    current = time.time() if now is None else now
    if isinstance(current, bool) or not isinstance(current, (int, float)) or math.isnan(current):
        # NaN compares false with everything: any timestamp would pass as fresh.
        raise ConfigurationError(f"now must be a number of seconds, got {current!r}")
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookVerificationError(
            f"stale webhook signature: signed at t={timestamp}, "
            f"{abs(current - int(timestamp)):.0f}s from now (tolerance {tolerance:.0f}s)",
            reason="stale",
        )
    expected = _digest(secret_bytes, timestamp, body)
    matched = False
    for candidate in signatures:
        # compare_digest on ASCII bytes: constant time, and no error on odd input
        matched |= hmac.compare_digest(expected.encode(), candidate.encode("ascii", "replace"))
    if not matched:
        raise WebhookVerificationError(
            "webhook signature does not match the body (wrong secret, or the body was altered)",
            reason="mismatch",
        )
    return int(timestamp)


def parse_webhook_event(raw_body: str | bytes) -> Event:
    """Parse a verified delivery body into an ``Event`` (unknown types pass through)."""
    try:
        payload = json_loads(_as_bytes(raw_body, "raw_body"))
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError(
            "webhook body is not JSON", reason="invalid_payload"
        ) from None
    try:
        return parse_event(payload, 200, "POST", "webhook")
    except UnexpectedResponseError as exc:
        raise WebhookVerificationError(
            f"webhook body is not an event record: {exc.message}", reason="invalid_payload"
        ) from None


class WebhookHandler:
    """Verifies, dedupes and dispatches OpenTrain deliveries (see ``webhook_handler``).

    ``handle`` is the aiohttp.web request handler; ``install(app, path)`` routes it and
    drains background handlers when the app shuts down.  ``received``, ``duplicates``
    and ``rejected`` count deliveries.
    """

    def __init__(
        self,
        secret: str | bytes,
        on_event: Callable[[Event], Awaitable[Any]],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        background: bool = True,
        dedupe_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _as_bytes(secret, "secret"):
            raise ConfigurationError("the webhook secret is empty")
        if dedupe_size < 1:
            raise ConfigurationError("dedupe_size must be >= 1")
        self._secret = secret
        self._on_event = on_event
        self._tolerance = _check_tolerance(tolerance)
        self._background = background
        self._clock = clock
        self._seen: RecentSet[str] = RecentSet(dedupe_size)
        self._in_progress: set[str] = set()  # deliveries being handled (background=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self.received = 0
        """Deliveries handed to ``on_event``."""
        self.duplicates = 0
        """Deliveries acknowledged without calling ``on_event`` again."""
        self.rejected = 0
        """Deliveries refused because they did not verify."""

    def install(self, app: web.Application, path: str = "/webhooks/opentrain") -> None:
        """Route POST ``path`` to ``handle`` and drain pending handlers on app cleanup."""
        app.router.add_post(path, self.handle)

        async def drain_on_cleanup(_: web.Application) -> None:
            await self.drain()

        app.on_cleanup.append(drain_on_cleanup)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp.web handler: one delivery in, a JSON acknowledgement out."""
        body = await request.read()
        try:
            verify_webhook_signature(
                self._secret,
                body,
                request.headers.get(SIGNATURE_HEADER),
                tolerance=self._tolerance,
                now=self._clock(),
            )
            event = parse_webhook_event(body)
        except WebhookVerificationError as exc:
            self.rejected += 1
            logger.warning("rejected webhook delivery: %s", exc)
            status = 400 if exc.reason == "invalid_payload" else 401
            return web.json_response({"ok": False, "error": exc.reason}, status=status)
        key = request.headers.get(DELIVERY_HEADER) or f"event:{event.id}"
        if self._seen.seen(key):
            self.duplicates += 1
            return web.json_response({"ok": True, "duplicate": True})
        if key in self._in_progress:
            # A retry while the first delivery is still being handled: not acknowledged,
            # so that OpenTrain tries again if that handling fails.
            return web.json_response({"ok": False, "error": "in_progress"}, status=409)
        self.received += 1
        if self._background:
            self._remember(key)
            task = asyncio.create_task(self._run(event, key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return web.json_response({"ok": True}, status=202)
        self._in_progress.add(key)
        try:
            await self._on_event(event)
        except Exception:  # not remembered: OpenTrain's retry of this delivery gets through
            logger.exception("webhook event handler failed for event %s", event.id)
            return web.json_response({"ok": False, "error": "handler_failed"}, status=500)
        finally:
            self._in_progress.discard(key)
        self._remember(key)
        return web.json_response({"ok": True})

    def _remember(self, key: str) -> None:
        self._seen.add(key)

    async def _run(self, event: Event, key: str) -> None:
        try:
            await self._on_event(event)
        except Exception:
            logger.exception("webhook event handler failed for event %s", event.id)

    async def drain(self) -> None:
        """Wait until every event handed off in the background has been handled."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    @property
    def pending(self) -> int:
        """Background handlers still running."""
        return len(self._tasks)


def webhook_handler(
    secret: str | bytes,
    on_event: Callable[[Event], Awaitable[Any]],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    background: bool = True,
    dedupe_size: int = 10_000,
    clock: Callable[[], float] = time.time,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp.web handler that verifies, dedupes and dispatches deliveries::

        app.router.add_post("/webhooks/opentrain", webhook_handler(secret, on_event))

    Each delivery is verified over its raw body (401 when the signature is missing,
    malformed, stale or wrong; 400 when a verified body is not an event record), deduped
    on ``X-OpenTrain-Delivery`` (a repeat is acknowledged with 200 and not dispatched
    again), then ``on_event(event)`` gets the typed ``Event``.  With ``background=True``
    (the default) the handler answers 202 at once and runs ``on_event`` as a task, so
    slow user code never makes OpenTrain time out (10 s) and retry; failures are logged.
    With ``background=False`` it awaits ``on_event`` and answers 500 if it raises, so
    OpenTrain retries the delivery.  The returned handler is ``WebhookHandler.handle``
    (its ``__self__`` has the counters and ``drain()``); use ``WebhookHandler(...)
    .install(app)`` to have pending handlers drained when the app shuts down.
    """
    return WebhookHandler(
        secret,
        on_event,
        tolerance=tolerance,
        background=background,
        dedupe_size=dedupe_size,
        clock=clock,
    ).handle
