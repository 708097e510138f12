"""Webhook deliveries: signature verification and an aiohttp.web handler.

OpenTrain POSTs one /updates event record per delivery, signed in the header
``X-OpenTrain-Signature: t=<unix seconds>,v1=<hex>`` where ``v1`` is the hex
HMAC-SHA256 of ``"<t>.<raw body>"`` under the endpoint's secret.  Verify the raw bytes
before parsing anything, within a tolerance window (5 minutes), with a constant-time
compare.

The header is read as the official ``opentrain-ai`` verifier reads it, so that every
header it accepts is accepted here: elements split on ``,`` and trimmed; elements that
are empty, have no ``=``, another key, a ``t`` that is not digits or an empty ``v1`` are
ignored (a sender may add fields); the last ``t`` counts.  One deliberate difference: any
matching ``v1`` is accepted, not only the last (secret rotation).

Retries reuse ``X-OpenTrain-Delivery``, but that header is not signed: a delivery replayed
with another value verifies too.  So the handler dedupes on the event id in the signed
body, through a ``DedupeStore`` (in memory, or Redis to share it between replicas).

The recommended pattern is webhook as the trigger and /updates (``listen()``) as the
source of truth: a lost or failed delivery is then never a lost message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ._errors import ConfigurationError, UnexpectedResponseError, WebhookVerificationError
from ._hooks import awaited
from ._json import json_loads
from ._read_models import Event, parse_event
from ._webhook_dedupe import DedupeStore, MemoryDedupeStore, RenewableDedupeStore, _check_ttl

__all__ = [
    "DEFAULT_DEDUPE_TTL",
    "DEFAULT_TOLERANCE",
    "PENDING_TTL",
    "RENEW_INTERVAL",
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
DEFAULT_DEDUPE_TTL = 86_400.0
"""Seconds a handled event is remembered (OpenTrain's retries are over long before)."""
PENDING_TTL = 120.0
"""Seconds an event being handled inline stays claimed unless renewed: a replica that
dies while handling it blocks the event's retries no longer than this."""
RENEW_INTERVAL = PENDING_TTL / 5
"""Seconds between renewals of an inline handler's claim (to ``PENDING_TTL`` again): a
fifth, so that three renewals in a row may fail (a Redis blip, a slow round trip)
before the claim lapses, at one store call per running handler every 24 s.  A quarter
allowed two: the fourth renewal after the last good one came a whole claim later, plus
the round trips, once the claim had lapsed (tests/test_webhook_renewals_failing.py)."""
_MAX_TIMESTAMP_DIGITS = 4300
"""Python's int() refuses longer digit strings (so the official verifier fails on them)."""
_MAX_TIMESTAMP = 10**15
"""No signature is that far from now (31 million years): such a t is refused before it
meets a float (the official verifier rejects it as stale)."""


class _WrongKind(ConfigurationError, TypeError):
    """A secret or body of the wrong kind (``os.environ.get`` of a missing variable, an
    already parsed body): an ``OpenTrainError``, and still the ``TypeError`` it was."""


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    hint = " (is its environment variable set?)" if what == "secret" and value is None else ""
    raise _WrongKind(f"{what} must be bytes or str, got {type(value).__name__}{hint}")


def _digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_webhook_payload(
    secret: str | bytes, raw_body: str | bytes, *, timestamp: int | None = None
) -> str:
    """The ``X-OpenTrain-Signature`` value OpenTrain would send for ``raw_body``.

    For tests of your own webhook endpoint (and the fake server); ``timestamp``
    defaults to now.
    """
    t = int(time.time()) if timestamp is None else int(timestamp)
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


def _parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp (the last ``t``) and every non-empty ``v1``, read as the official
    verifier reads them; anything else in the header is ignored."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            # isdigit() also admits characters int() refuses (superscripts), and int()
            # refuses very long strings: the official verifier fails there, so do we.
            if not value.isdecimal() or len(value) > _MAX_TIMESTAMP_DIGITS:
                raise WebhookVerificationError(
                    f"malformed {SIGNATURE_HEADER}: t is not a number", reason="malformed"
                )
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: no t=<unix seconds>", reason="malformed"
        )
    if timestamp >= _MAX_TIMESTAMP:  # the last t counts, as in the official verifier
        raise WebhookVerificationError(
            f"malformed {SIGNATURE_HEADER}: t is not a plausible time", reason="malformed"
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
    ``mismatch``.  The header is read as the official verifier reads it (see the module
    doc: unknown and empty elements are ignored); several ``v1`` entries are accepted
    (secret rotation): one must match.
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
    # Whole seconds, as the official verifier counts them (int(time.time())): a
    # delivery it accepts at the edge of the tolerance is accepted here too.
    age = abs(math.floor(current) - timestamp) if math.isfinite(current) else math.inf
    if age > tolerance:
        raise WebhookVerificationError(
            f"stale webhook signature: signed at t={timestamp}, "
            f"{age:.0f}s from now (tolerance {tolerance:.0f}s)",
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
    return timestamp


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
    and ``rejected`` count deliveries.  ``dedupe`` is where handled events are
    remembered (default: this process, the newest ``dedupe_size``); pass a
    ``RedisDedupeStore`` so that replicas share it.  A handled event is remembered
    ``dedupe_ttl`` seconds.
    """

    def __init__(
        self,
        secret: str | bytes,
        on_event: Callable[[Event], Awaitable[Any] | None],
        *,
        tolerance: float = DEFAULT_TOLERANCE,
        background: bool = True,
        dedupe: DedupeStore | None = None,
        dedupe_size: int = 10_000,
        dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if not _as_bytes(secret, "secret"):
            raise ConfigurationError("the webhook secret is empty")
        if not callable(on_event):  # else every delivery fails, and is retried for ever
            raise ConfigurationError(f"on_event must be a function, got {type(on_event).__name__}")
        if isinstance(dedupe_size, bool) or not isinstance(dedupe_size, int) or dedupe_size < 1:
            raise ConfigurationError("dedupe_size must be an integer >= 1")
        _check_ttl(dedupe_ttl)
        if dedupe is not None and not all(
            callable(getattr(dedupe, name, None)) for name in ("claim", "settle", "release")
        ):
            raise ConfigurationError(
                "dedupe must be a DedupeStore (async claim(), settle() and release()), got "
                f"{type(dedupe).__name__}"
            )
        self._secret = secret
        self._on_event = on_event
        self._tolerance = _check_tolerance(tolerance)
        self._background = background
        self._clock = clock
        self._sleep = sleep
        self._dedupe: DedupeStore = MemoryDedupeStore(dedupe_size) if dedupe is None else dedupe
        self._ttl = float(dedupe_ttl)
        self._tasks: set[asyncio.Task[None]] = set()
        self._inline: set[str] = set()
        """Keys of the events ``on_event`` is handling inline here, right now."""
        if not background and not callable(getattr(self._dedupe, "renew", None)):
            logger.warning(
                "webhook dedupe store %s has no renew(): an inline on_event slower than "
                "%g s may be handed a retry of its event again",
                type(self._dedupe).__name__,
                PENDING_TTL,
            )
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
        # The event id is signed; X-OpenTrain-Delivery is not (a replay may change it).
        key, token = f"event:{event.id}", secrets.token_hex(8)
        if key in self._inline:  # being handled here: known without asking the store
            return web.json_response({"ok": False, "error": "in_progress"}, status=409)
        try:
            held = await self._dedupe.claim(
                key, token, self._ttl if self._background else PENDING_TTL
            )
        except Exception as exc:  # the store is down: never risk handling twice
            logger.warning(
                "webhook event %s: the dedupe store failed (%s); answered 503 so that "
                "OpenTrain retries",
                event.id,
                type(exc).__name__,
            )
            return web.json_response({"ok": False, "error": "dedupe_unavailable"}, status=503)
        if held == "done":
            self.duplicates += 1
            return web.json_response({"ok": True, "duplicate": True})
        if held is not None:
            # A retry while the first delivery is still being handled: not acknowledged,
            # so that OpenTrain tries again if that handling fails.
            return web.json_response({"ok": False, "error": "in_progress"}, status=409)
        self.received += 1
        if self._background:
            await self._settle(key, token, event)
            task = asyncio.create_task(self._run(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return web.json_response({"ok": True}, status=202)
        return await self._handle_inline(key, token, event)

    async def _handle_inline(self, key: str, token: str, event: Event) -> web.Response:
        """``on_event`` awaited, its claim renewed meanwhile (``_keep``), then settled
        (200) or released (500, or cancelled): OpenTrain's retry then gets through."""
        stop = asyncio.Event()
        keeper = asyncio.create_task(self._keep(key, token, event, stop))
        self._inline.add(key)
        try:
            await self._call(event)
        except Exception:  # released: OpenTrain's retry of this delivery gets through
            logger.exception("webhook event handler failed for event %s", event.id)
            await self._stop_keeping(keeper, stop)
            await self._release(key, token, event)
            return web.json_response({"ok": False, "error": "handler_failed"}, status=500)
        except BaseException:  # cancelled (the app is stopping): let a retry through
            await asyncio.shield(self._stop_keeping(keeper, stop))
            await asyncio.shield(self._release(key, token, event))
            raise
        finally:
            self._inline.discard(key)
        await self._stop_keeping(keeper, stop)
        await self._settle(key, token, event)
        return web.json_response({"ok": True})

    async def _keep(self, key: str, token: str, event: Event, stop: asyncio.Event) -> None:
        """Renew the claim every ``RENEW_INTERVAL`` until ``stop``, as a lease is kept.

        A claim held only for ``PENDING_TTL`` lapsed under a slower ``on_event``, and
        OpenTrain's next retry (to any replica) was handled a second time.  Renewed, it
        lasts as long as the handler; if the process dies the renewals stop with it and
        the claim lapses ``PENDING_TTL`` after the last one, so the retry is handled then.
        """
        renew = getattr(self._dedupe, "renew", None)
        if not callable(renew):
            return
        store: RenewableDedupeStore = self._dedupe  # type: ignore[assignment]
        while True:
            await self._sleep(RENEW_INTERVAL)
            if stop.is_set():
                return
            try:
                held = await store.renew(key, token, PENDING_TTL)
            except Exception as exc:  # keep trying: the claim holds PENDING_TTL
                logger.warning(
                    "webhook event %s: the dedupe store failed to renew its claim (%s)",
                    event.id,
                    type(exc).__name__,
                )
                continue
            if not held and not stop.is_set():
                logger.warning(
                    "webhook event %s: its claim lapsed while on_event ran; a retry may "
                    "be handled again elsewhere",
                    event.id,
                )
                return

    @staticmethod
    async def _stop_keeping(keeper: asyncio.Task[None], stop: asyncio.Event) -> None:
        """Stop the renewals before the claim is settled or released.  ``stop`` as well
        as the cancel: redis-py may swallow a cancel that lands as a command completes
        (see ``_cli/_journal_lease.release``), and a renewal racing the settle finds the
        claim settled and changes nothing (the stores check the token)."""
        stop.set()
        keeper.cancel()
        with contextlib.suppress(BaseException):
            await keeper

    async def _settle(self, key: str, token: str, event: Event) -> None:
        try:
            await self._dedupe.settle(key, token, self._ttl)
        except Exception as exc:
            logger.warning(
                "webhook event %s: handled, but the dedupe store failed to record it (%s)",
                event.id,
                type(exc).__name__,
            )

    async def _release(self, key: str, token: str, event: Event) -> None:
        try:
            await self._dedupe.release(key, token)
        except Exception as exc:
            logger.warning(
                "webhook event %s: the dedupe store failed to release it (%s); its retries "
                "wait up to %g s",
                event.id,
                type(exc).__name__,
                PENDING_TTL,
            )

    async def _call(self, event: Event) -> None:
        """``on_event(event)``, awaited when it returns an awaitable: a plain function
        (``queue.put_nowait``) is fine (``_hooks.awaited``)."""
        await awaited(self._on_event(event))

    async def _run(self, event: Event) -> None:
        try:
            await self._call(event)
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
    on_event: Callable[[Event], Awaitable[Any] | None],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    background: bool = True,
    dedupe: DedupeStore | None = None,
    dedupe_size: int = 10_000,
    dedupe_ttl: float = DEFAULT_DEDUPE_TTL,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp.web handler that verifies, dedupes and dispatches deliveries::

        app.router.add_post("/webhooks/opentrain", webhook_handler(secret, on_event))

    Each delivery is verified over its raw body (401 when the signature is missing,
    malformed, stale or wrong; 400 when a verified body is not an event record), deduped
    on the signed event id (a repeat, under any ``X-OpenTrain-Delivery``, is acknowledged
    with 200 and not dispatched again), then ``on_event(event)`` gets the typed
    ``Event``.  ``dedupe`` shares what was handled between replicas
    (``RedisDedupeStore``); when it fails the answer is 503, so OpenTrain retries.  With
    ``background=True`` (the default) the handler answers 202 at once and runs
    ``on_event`` as a task, so slow user code never makes OpenTrain time out (10 s) and
    retry; failures are logged.  With ``background=False`` it awaits ``on_event`` and
    answers 500 if it raises, so OpenTrain retries the delivery (a retry arriving while
    the first is handled gets 409: the claim is renewed every ``RENEW_INTERVAL`` while
    ``on_event`` runs; ``sleep`` paces that, injectable for tests).  The returned
    handler is ``WebhookHandler.handle`` (its ``__self__`` has the counters and
    ``drain()``); use ``WebhookHandler(...).install(app)`` to have pending handlers
    drained when the app shuts down.
    """
    return WebhookHandler(
        secret,
        on_event,
        tolerance=tolerance,
        background=background,
        dedupe=dedupe,
        dedupe_size=dedupe_size,
        dedupe_ttl=dedupe_ttl,
        clock=clock,
        sleep=sleep,
    ).handle
