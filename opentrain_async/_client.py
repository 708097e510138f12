"""``OpenTrainClient``: one aiohttp session, one request pipeline, shared by every task.

Every request goes through the same steps: wait for the pacer (rate control shared by
the whole client), take the semaphore (``max_concurrency`` requests on the wire at
most), send, release the semaphore, then classify the answer.  Retries wrap that
pipeline (see ``_retry``), so a backoff never holds the semaphore or a connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Container, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

from ._bulk import (
    DEFAULT_KEEP_FAILURES,
    BulkReport,
    BulkSend,
    SendItem,
    SendOutcome,
    refuse_if_closing,
    run_batch,
)
from ._config import resolve_settings, without_userinfo
from ._delivery import ClaimedIds, Delivery
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    OpenTrainError,
    RateLimitError,
    RedirectError,
    UnexpectedResponseError,
    error_from_response,
)
from ._json import json_dumps, json_loads
from ._models import Message
from ._pacing import Pacer, PacingBackend
from ._pacing.redis_backend import RedisPacingBackend, client_backend
from ._proxy import proxy_from_env
from ._raw import RAW_RESPONSES, raw_call
from ._read import ReadMixin
from ._retry import RetryEvent, RetryPolicy
from ._time import Clock
from ._validation import check_option, validate_content, validate_conversation_id
from ._version import __version__

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ClientStats",
    "OpenTrainClient",
    "RawResponseClient",
    "send_message",
]

logger = logging.getLogger("opentrain_async")

DEFAULT_MAX_CONCURRENCY = 64
"""Requests on the wire per client by default.  Measured (``python -m
benchmarks.concurrency``, fake server with 100 ms latency): 8 caps a job at 74 msg/s,
64 reaches 428; behind a 200/s token bucket 64 is as fast as 32 (and 2.4x 8) for 3% more
429s, with pacing keeping losses and duplicates at zero."""

_JSON_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    # Answers are small JSON: nothing to gain from compression.  Saying so here, rather
    # than with skip_auto_headers, spares aiohttp a header merge on every request.
    "Accept-Encoding": "identity",
}

_OWN_SESSION_OPTIONS: dict[str, Any] = {"allow_redirects": False}
_URL_CACHE_SIZE = 64

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""The largest answer body read (16 MiB): the API's biggest page is about 6 MB."""


@attrs.define
class ClientStats:
    """Counters of what one client did on the wire (for progress displays and benchmarks)."""

    requests: int = 0
    """HTTP attempts made (every retry counts)."""
    rate_limited: int = 0
    """429 answers received."""
    retries: int = 0
    """Waits taken before a retry."""
    in_flight: int = 0
    """Requests on the wire right now."""
    pacing_fallbacks: int = 0
    """Times the shared pacing store (Redis) was unreachable and the client paced itself."""


class OpenTrainClient(ReadMixin):
    """Async client for the OpenTrain public API's messaging surface.

    Use it as an async context manager and share one instance across tasks::

        async with OpenTrainClient() as client:
            message = await client.send_message("conv_123", "Batch 7 is live")

    ``api_token`` and ``base_url`` default to the environment and the official CLI's
    config file (see ``resolve_settings``).  ``max_concurrency`` bounds requests on the
    wire; ``rate_limit`` (requests per second) paces smoothly when you know the limit,
    and otherwise the client learns it from 429s.  ``clock`` and ``sleep`` are injectable
    so that backoff and pacing are testable without waiting.

    Redirects are never followed (``RedirectError``), a passed ``session``'s
    ``raise_for_status`` is overridden, and an answer body over ``max_response_bytes``
    is not read (a typed error instead).

    ``pacing_url="redis://host:6379/0"`` (else ``$OT_PACING_URL``; ``""`` for none)
    shares one learned limit with every process sending with this token, in Redis; it
    fails open (local pacing, counted in ``stats.pacing_fallbacks``) unless
    ``pacing_fail_closed=True``.  Holding a ``redis.asyncio.Redis`` already, pass
    ``pacing_backend=RedisPacingBackend(redis)`` instead.

    ``reconcile=True`` makes single sends read the conversation back after an unknown
    outcome (bulk sends always do unless told not to); ``reconcile_delay`` is how long
    to let a timed-out request finish server-side first, ``clock_skew`` how far before
    the first attempt a found message may be stamped.
    """

    def __init__(
        self,
        api_token: str | None = None,
        base_url: str | None = None,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_retries: int | None = None,
        max_retry_after: float | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        rate_limit: float | None = None,
        retry_policy: RetryPolicy | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        pacer: Pacer | None = None,
        pacing_backend: PacingBackend | None = None,
        pacing_url: str | None = None,
        pacing_fail_closed: bool | None = None,
        session: aiohttp.ClientSession | None = None,
        reconcile: bool = False,
        reconcile_delay: float = 1.0,
        clock_skew: float = 60.0,
        log_content: bool = False,
        user_agent: str | None = None,
        trust_env: bool = True,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        check_option(max_concurrency, "max_concurrency", minimum=1, integer=True)
        check_option(max_response_bytes, "max_response_bytes", minimum=1, integer=True)
        check_option(reconcile_delay, "reconcile_delay", minimum=0, unit=" seconds")
        check_option(clock_skew, "clock_skew", minimum=0, unit=" seconds")
        if rate_limit is not None:
            check_option(rate_limit, "rate_limit", minimum=0, strict=True, unit=" per second")
        if user_agent is not None and not isinstance(user_agent, str):
            raise ConfigurationError("user_agent must be a string")
        _refuse_overridden_knobs(
            "retry_policy",
            retry_policy,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            on_retry=on_retry,
        )
        _refuse_overridden_knobs(
            "pacer", pacer, rate_limit=rate_limit, pacing_backend=pacing_backend
        )
        # The client's sleep= would silently not apply to retries (real waits in tests).
        mixed = retry_policy is not None and retry_policy.sleep is asyncio.sleep
        if mixed and sleep is not asyncio.sleep:
            raise ConfigurationError(
                "retry_policy= waits with its own sleep (asyncio.sleep), not sleep=; "
                "pass sleep= to the RetryPolicy too"
            )
        if user_agent is not None and not (user_agent.isascii() and user_agent.isprintable()):
            raise ConfigurationError("user_agent must be printable ASCII (no CR, LF or NUL)")
        self._max_response_bytes = max_response_bytes
        self._settings = resolve_settings(api_token, base_url, env=env, config_path=config_path)
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._root = self._settings.api_root
        self.max_concurrency = max_concurrency
        self._timeout = as_client_timeout(timeout)
        self._retry = retry_policy or RetryPolicy(
            max_retries=5 if max_retries is None else max_retries,
            max_retry_after=120.0 if max_retry_after is None else max_retry_after,
            on_retry=on_retry,
            sleep=sleep,
        )
        self.stats = ClientStats()
        pacing_backend = client_backend(
            pacer_given=pacer is not None,
            backend=pacing_backend,
            pacing_url=pacing_url,
            fail_closed=pacing_fail_closed,
            env=self._env,
            api_root=self._root,
            token=self._settings.token,
            on_fallback=self._count_pacing_fallback,
            clock=clock,
            sleep=sleep,
        )
        self._pacer = pacer or Pacer(
            rate_limit=rate_limit, backend=pacing_backend, clock=clock, sleep=sleep
        )
        self._proxy = proxy_from_env(self._root, self._env) if trust_env else None
        self._parent: OpenTrainClient | None = None
        """The client whose session a ``with_options`` copy shares (None: this one)."""
        self._time = Clock(monotonic=clock, sleep=sleep, wall=wall_clock)
        """The time seam every part of this client reads time and waits through."""
        self._clock = clock
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._urls: dict[str, URL] = {}  # parsed once per path, not per request
        self._session = session
        self._owns_session = session is None
        self._closed = False
        # What each request must carry that the session does not (see _wire_options):
        # redirects are never followed (the request would go to another origin).
        self._request_options: dict[str, Any] = _OWN_SESSION_OPTIONS
        self._headers = {
            **_JSON_HEADERS,
            "Authorization": f"Bearer {self._settings.token}",
            "User-Agent": user_agent or f"opentrain-async/{__version__}",
        }
        self._request_options = self._wire_options(None)
        self._reconcile = reconcile
        self._reconcile_delay = reconcile_delay
        self._clock_skew = clock_skew
        self._log_content = log_content
        self._delivery = self._new_delivery(None)
        self.init_reads(self._options, self._time, self._default_cursor_path)

    def __repr__(self) -> str:
        return (
            f"OpenTrainClient(api_root={self._root!r}, max_concurrency={self.max_concurrency}, "
            f"token=<redacted>)"
        )

    @property
    def api_root(self) -> str:
        """The API root URL requests go to (``<origin>/api/public/v1``)."""
        return self._root

    @property
    def in_flight(self) -> int:
        """Requests on the wire right now (this client and its ``with_options`` copies)."""
        return self.stats.in_flight

    @property
    def pacer(self) -> Pacer:
        """The rate control shared by every request of this client."""
        return self._pacer

    def _count_pacing_fallback(self) -> None:
        self.stats.pacing_fallbacks += 1

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry rules this client applies."""
        return self._retry

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> OpenTrainClient:
        self._closed = False  # entering again reopens a closed client
        self._ensure_session()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it; the client cannot send after.

        A ``with_options`` copy only stops itself: the session is its parent's.
        """
        self._closed = True
        if self._parent is not None:
            return  # a with_options copy: the session and the pacer are its parent's
        if isinstance(self._pacer.backend, RedisPacingBackend):
            await self._pacer.backend.aclose()
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError(
                "this OpenTrainClient was closed; open a new one (or use `async with`)"
            )
        if self._parent is not None:
            return self._parent._ensure_session()
        if self._session is not None and self._session._loop.is_closed():
            # A client kept across asyncio.run() calls: its session, connections and
            # semaphore belong to a loop that has ended (aiohttp: "Event loop is closed").
            raise ConfigurationError(
                "this OpenTrainClient was opened under an event loop that has ended (a "
                "second asyncio.run()?); open one client per event loop"
            )
        if self._session is None or self._session.closed:
            if self._session is not None and not self._owns_session:
                raise ConfigurationError(
                    "the aiohttp session passed as session= is closed; pass an open one"
                )
            connector = aiohttp.TCPConnector(limit=self.max_concurrency + 4)
            # Our own session carries the headers, so requests need not merge them, and
            # no cookie jar: the API authenticates by bearer token, never by cookie.
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._session_headers(),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                proxy=self._proxy.url if self._proxy is not None else None,
            )
            self._owns_session = True
            self._request_options = self._wire_options(None)
        return self._session

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> OpenTrainClient:
        """A copy of this client with another timeout or retry budget (as openai-python).

        The copy shares everything else: the session, the pacer and the concurrency
        limit, the ids read-back has claimed, the stats.  It is cheap (no new
        connection), so ``client.with_options(timeout=5).send_message(...)`` is fine.
        Closing the copy leaves this client open.
        """
        copy = object.__new__(OpenTrainClient)
        copy.__dict__.update(self.__dict__)
        copy._parent = self._parent or self
        copy._session = None
        copy._closed = False
        if max_retries is not None:
            copy._retry = attrs.evolve(self._retry, max_retries=max_retries)
        if timeout is not None:
            copy._timeout = as_client_timeout(timeout)
            copy._request_options = copy._wire_options(copy._timeout)
        delivery = self._delivery
        copy._reconcile_delay = delivery.reconcile_delay
        copy._clock_skew = delivery.clock_skew
        copy._log_content = delivery.log_content
        copy._delivery = copy._new_delivery(delivery.claimed)  # one set of claimed ids
        copy.init_reads(copy._options, copy._time, copy._default_cursor_path)
        return copy

    def _wire_options(self, timeout: aiohttp.ClientTimeout | None) -> dict[str, Any]:
        """What each request must carry that the session does not: headers and timeout on
        a caller's session, proxy credentials, a copy's own timeout."""
        root = self._parent or self
        options: dict[str, Any] = dict(_OWN_SESSION_OPTIONS)
        if not root._owns_session:
            # A caller's session: also our own status handling, whatever its
            # raise_for_status says.
            options.update(headers=self._headers, timeout=self._timeout, raise_for_status=False)
        elif root._proxy is not None:
            options["headers"] = {"Authorization": self._headers["Authorization"]}
            if root._proxy.authorization is not None:
                options["proxy_headers"] = {"Proxy-Authorization": root._proxy.authorization}
        if timeout is not None:
            options["timeout"] = timeout
        return options

    def _session_headers(self) -> dict[str, str]:
        """The headers our own session sends on every request.

        Behind a proxy the token goes per request instead: aiohttp copies a session's
        headers into the CONNECT sent to the proxy, turning ``Authorization`` into
        ``Proxy-Authorization``, which would hand the token to the proxy in clear text.
        """
        if self._proxy is None:
            return self._headers
        return {k: v for k, v in self._headers.items() if k != "Authorization"}

    @property
    def with_raw_response(self) -> RawResponseClient:
        """The same calls, returning a ``RawResponse``: ``.parse()`` is the usual result,
        with ``.request_id``, ``.status_code`` and ``.headers`` of the answer::

            raw = await client.with_raw_response.send_message(cid, "hi")
            print(raw.request_id, raw.parse().id)
        """
        return RawResponseClient(self)

    def _options(
        self, timeout: float | aiohttp.ClientTimeout | None, max_retries: int | None
    ) -> OpenTrainClient:
        """This client, or a ``with_options`` copy when a call overrides an option."""
        if timeout is None and max_retries is None:
            return self
        return self.with_options(timeout=timeout, max_retries=max_retries)

    # -- the request pipeline --------------------------------------------------------

    async def _attempt(
        self, method: str, path: str, params: Mapping[str, str] | None, data: bytes | None
    ) -> tuple[int, Any]:
        """One HTTP attempt: pace, take the semaphore, send, classify the answer.

        Kept in one frame on purpose: every coroutine layer is re-entered each time
        aiohttp resumes, so the send path stays shallow.
        """
        # Pacing counts sends only: the limit is on sending, and reads (read-backs, a
        # resume's settling) would otherwise inflate the first estimate of the rate.
        pacer = self._pacer if method != "GET" else None
        admitted = 0.0
        if pacer is not None:
            fast = pacer.try_acquire()
            admitted = fast if fast is not None else await pacer.acquire()
        url = self._urls.get(path)
        if url is None:
            url = URL(self._root + path)
            if len(self._urls) < _URL_CACHE_SIZE:  # paths with ids (proposals) are unbounded
                self._urls[path] = url
        debug = logger.isEnabledFor(logging.DEBUG)
        # Failures are raised below, outside the ``except`` that caught aiohttp's error,
        # so that it is not attached as ``__context__``: aiohttp's errors carry the
        # request's headers, and with them the token.
        failure: OpenTrainError | None = None
        try:
            session = self._ensure_session()
            # acquire/release rather than ``async with``: two fewer coroutine frames on
            # the hottest path, same semantics.
            semaphore = self._semaphore
            await semaphore.acquire()
            stats = self.stats  # shared with every with_options copy
            stats.in_flight += 1
            try:
                if method != "GET":  # a send_many loop that was left starts no new send
                    refuse_if_closing()
                stats.requests += 1
                sent_at = self._clock() if debug else 0.0
                # Awaiting the request (not ``async with``) keeps aiohttp's frames one
                # level shallower; the response is released below either way.
                response = await session.request(
                    method, url, params=params, data=data, **self._request_options
                )
                try:
                    status = response.status
                    headers = response.headers
                    # The body is read with a size cap: an answer usually arrives in
                    # one piece, and only a longer one takes the counting loop.
                    content = response.content
                    body = await content.readany()
                    cap = self._max_response_bytes
                    raw = (
                        body
                        if content.at_eof() and len(body) <= cap
                        else await _read_capped(content, body, cap)
                    )
                finally:
                    response.release()
            except aiohttp.ConnectionTimeoutError as exc:
                failure = APITimeoutError(
                    f"{method} {path}: timed out connecting ({type(exc).__name__})",
                    reached_server=False,
                )
            except aiohttp.ClientHttpProxyError as exc:  # the tunnel was never opened
                failure = APIConnectionError(
                    f"{method} {path}: the proxy refused the connection ({exc.status})",
                    reached_server=False,
                )
            except aiohttp.ClientConnectorError as exc:
                failure = APIConnectionError(
                    f"{method} {path}: could not connect: {exc}", reached_server=False
                )
            except asyncio.TimeoutError:
                timeout = self._timeout
                failure = APITimeoutError(
                    f"{method} {path}: no answer within "
                    f"{timeout.total or timeout.sock_read or timeout.connect}s"
                )
            except aiohttp.ClientError as exc:
                failure = APIConnectionError(
                    f"{method} {path}: connection failed: {_described(exc, self._settings.token)}"
                )
            finally:
                stats.in_flight -= 1
                semaphore.release()
        except BaseException:  # the pacer must hear back about every admitted request
            if pacer is not None:
                pacer.on_error(admitted)
            raise
        if failure is not None:
            if pacer is not None:
                pacer.on_error(admitted)
            try:
                raise failure
            finally:  # Python 3.10 may attach an exception handled up the stack
                failure.__context__ = None
        if debug:
            logger.debug(
                "%s %s -> %d in %.1fms request_id=%s",
                method,
                path,
                status,
                (self._clock() - sent_at) * 1000,
                # A server may echo the request: the token never reaches a log record.
                _without_secret(self._settings.token, None, headers)[1].get("X-Request-Id"),
            )
        if raw is not None and 200 <= status < 300:
            if pacer is not None:
                pacer.on_success(admitted)
            raw_box = RAW_RESPONSES.get()
            if raw_box is not None:  # inside client.with_raw_response.<method>(...)
                raw_box.append((status, _without_secret(self._settings.token, None, headers)[1]))
            try:
                return status, json_loads(raw)
            except (ValueError, UnicodeDecodeError):
                pass  # raised below, outside the handler: the decoder's error holds the body
            raise UnexpectedResponseError(
                f"HTTP {status} with a body that is not JSON",
                status=status,
                request_id=_without_secret(self._settings.token, None, headers)[1].get(
                    "X-Request-Id"
                ),
                method=method,
                path=path,
            )
        error = self._error(status, raw, headers, method, path)
        if isinstance(error, RateLimitError):
            self.stats.rate_limited += 1
            if pacer is not None:
                await pacer.on_throttle(admitted, error.retry_after)
        elif pacer is not None:
            pacer.on_error(admitted)
        raise error

    def _error(
        self, status: int, raw: bytes | None, headers: Mapping[str, str], method: str, path: str
    ) -> APIError:
        """The typed error for an answer that is not a readable 2xx."""
        raw, headers = _without_secret(self._settings.token, raw, headers)
        request_id = headers.get("X-Request-Id")
        if 300 <= status < 400:
            location = without_userinfo(headers.get("Location", ""))[:300]
            where = f"to {location!r}" if location else "without a Location"
            text = (
                f"HTTP {status} redirect {where}: redirects are never followed, so the "
                "request was not repeated there"
            )
            if method == "POST" and path == "/messages":
                text += "; the message was not delivered"
            return RedirectError(
                text,
                location=location or None,
                status=status,
                request_id=request_id,
                method=method,
                path=path,
            )
        if raw is None:
            limit = f"a body over {self._max_response_bytes:,} bytes (max_response_bytes), not read"
            if 200 <= status < 300:
                return UnexpectedResponseError(
                    f"HTTP {status} with {limit}",
                    status=status,
                    request_id=request_id,
                    method=method,
                    path=path,
                )
            raw = json_dumps({"error": f"HTTP {status} with {limit}"})
        return error_from_response(status, raw, headers, method=method, path=path)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> tuple[int, Any]:
        """Send one API request through the pipeline with the retry policy applied.

        ``path`` is relative to the API root (``/messages``).  Returns the status and
        the decoded JSON body.  ``idempotent`` defaults to True for GET only; a
        non-idempotent request is retried only when it certainly never reached the
        server, or on 429.
        """
        data = None if json_body is None else json_dumps(json_body)
        if idempotent is None:
            idempotent = method == "GET"
        try:
            return await self._attempt(method, path, params, data)
        except OpenTrainError as exc:
            first_failure = exc
        try:
            return await self._retry_request(first_failure, method, path, params, data, idempotent)
        except OpenTrainError as exc:
            _drop_foreign_context(exc)
            raise

    async def _retry_request(
        self,
        first_failure: OpenTrainError,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        idempotent: bool = False,
    ) -> tuple[int, Any]:
        """Continue after a failed first attempt under the retry policy (tenacity).

        Most requests succeed first time, so tenacity is only set up here, once an
        attempt has failed; it replays that failure as attempt 1 so that counting,
        waits and hooks are exactly as if it had run every attempt.
        """
        if self._retry.retry_reason(first_failure, idempotent=idempotent) is None:
            raise first_failure
        pending: OpenTrainError | None = first_failure

        async def attempt() -> tuple[int, Any]:
            nonlocal pending
            if pending is not None:
                failure, pending = pending, None
                raise failure
            return await self._attempt(method, path, params, data)

        retrying = self._retry.retrying(method, path, idempotent=idempotent)
        try:
            return await retrying(attempt)
        finally:
            self.stats.retries += retrying.statistics.get("attempt_number", 1) - 1

    # -- messages --------------------------------------------------------------------

    async def send_message(
        self,
        conversation_id: str,
        content: str,
        *,
        reconcile: bool | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> Message:
        """Send a plain-text message; returns the created ``Message``.

        Input is validated locally first (``InvalidRequestError``).  If the outcome is
        unknown (timeout after the request was written, dropped connection, 5xx), the
        message is never resent blindly.  With ``reconcile`` off (the default for single
        sends, unless the client was built with ``reconcile=True``) that raises
        ``DeliveryUnknownError``; with it on, the conversation is read back first:
        found means delivered, not found means it is safe to resend.  ``timeout`` and
        ``max_retries`` apply to this call alone (see ``with_options``).
        """
        validate_conversation_id(conversation_id)
        validate_content(content)
        message, _ = await self._options(timeout, max_retries)._delivery.deliver(
            conversation_id, content, self._reconcile if reconcile is None else reconcile
        )
        return message

    def send_many(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        grace: float = 5.0,
        before_send: Callable[[Any], Awaitable[None]] | None = None,
    ) -> BulkSend:
        """Send many messages; an async iterator with exactly one ``SendOutcome`` per input.

        ``items`` is any iterable or async iterable of ``(conversation_id, content)``
        tuples, mappings with ``conversationId``/``content`` (optional ``key``), or
        ``OutgoingMessage``s; it is pulled lazily as capacity frees up.  Outcomes arrive
        in completion order; ``outcome.index`` is the input position.  ``concurrency``
        (default: ``max_concurrency``) bounds inputs in progress; the client's
        semaphore still bounds requests on the wire and its pacer the rate.  Unknown
        outcomes are reconciled by read-back unless ``reconcile=False``.  Leaving the
        loop early (``break`` or an exception under ``async with``, or ``aclose()``)
        starts no new send and gives sends on the wire ``grace`` seconds to finish; the
        outcomes the loop did not see are then in ``.unreported``.  ``before_send`` is
        awaited with each valid input right before its send (a journal's durable
        "started" record); an ``OpenTrainError`` it raises is that input's outcome.
        """
        return BulkSend(
            self._delivery.deliver,
            items,
            policy=self._retry,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            grace=grace,
            before_send=before_send,
        )

    async def send_all(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None = None,
        keep_failures: int = DEFAULT_KEEP_FAILURES,
    ) -> BulkReport:
        """Send a whole batch and return a ``BulkReport`` (counts by kind, failed items).

        ``on_outcome`` is called with every outcome as it arrives (e.g. for progress), one
        call at a time (an async one is awaited before the next starts).  If it raises,
        the batch stops and the exception propagates.  The report keeps the first
        ``keep_failures`` failed outcomes and counts the rest.
        """
        return await run_batch(
            self._delivery.deliver,
            items,
            policy=self._retry,
            clock=self._time.monotonic,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            on_outcome=on_outcome,
            keep_failures=keep_failures,
        )

    async def find_own_message(
        self, conversation_id: str, content: str, *, since: float
    ) -> Message | None:
        """Read the conversation back for a message of ours with this content.

        Matches a message from the viewer with exactly ``content``, created at or after
        ``since`` (a Unix timestamp: when the send began) less ``clock_skew``, and not
        already attributed to another send of this client.  Used to settle sends whose
        outcome is unknown, e.g. by a journal after a crash.  Raises
        ``DeliveryUnknownError`` when the conversation cannot be read back far enough.
        """
        validate_conversation_id(conversation_id)
        return await self._delivery.find_own_message(conversation_id, content, since=since)

    def _default_cursor_path(self) -> Path:
        """Where ``listen()`` keeps its cursor by default: one file per API root and
        token, named by a hash (the token itself is never written)."""
        digest = hashlib.sha256(f"{self._root}\n{self._settings.token}".encode()).hexdigest()
        state = self._env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "opentrain_async" / f"listen-{digest[:16]}.json"

    def claim_ids(self, message_ids: Container[str]) -> None:
        """Tell read-back that these message ids already belong to other sends.

        A journal of an earlier run passes the ids it recorded as delivered, so that a
        message is never credited to two inputs with the same conversation and text.
        The collection is consulted live, not copied: ids added to it later count too.
        """
        self._delivery.claimed.include(message_ids)

    @property
    def reconcile_delay(self) -> float:
        """Seconds a timed-out send is given to finish server-side before read-back."""
        return self._delivery.reconcile_delay

    @reconcile_delay.setter
    def reconcile_delay(self, value: float) -> None:
        self._delivery.reconcile_delay = value

    @property
    def clock_skew(self) -> float:
        """How far before a send began a message found by read-back may be stamped."""
        return self._delivery.clock_skew

    @clock_skew.setter
    def clock_skew(self, value: float) -> None:
        self._delivery.clock_skew = value

    @property
    def log_content(self) -> bool:
        """Whether message content may appear in DEBUG log records."""
        return self._delivery.log_content

    @log_content.setter
    def log_content(self, value: bool) -> None:
        self._delivery.log_content = value

    def _new_delivery(self, claimed: ClaimedIds | None) -> Delivery:
        """This client's sending, over its own pipeline (a copy's timeout and retries)."""
        return Delivery(
            self._attempt,
            self._retry_request,
            self,
            self._retry,
            self._time,
            claimed=claimed,
            reconcile_delay=self._reconcile_delay,
            clock_skew=self._clock_skew,
            log_content=self._log_content,
        )


class RawResponseClient:
    """``client.with_raw_response``: each method as on the client, returning a
    ``RawResponse`` around its usual result (see ``_raw``)."""

    def __init__(self, client: OpenTrainClient) -> None:
        self.send_message = raw_call(client.send_message)
        self.request = raw_call(client.request)
        self.read_messages = raw_call(client.read_messages)
        self.list_conversations = raw_call(client.list_conversations)
        self.get_updates = raw_call(client.get_updates)
        self.start_proposal_conversation = raw_call(client.start_proposal_conversation)
        self.whoami = raw_call(client.whoami)
        self.capabilities = raw_call(client.capabilities)


def as_client_timeout(timeout: object) -> aiohttp.ClientTimeout:
    """``timeout=`` as aiohttp wants it: seconds for the whole request, or your own
    ``aiohttp.ClientTimeout`` (to tell connecting from reading apart)."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    seconds = check_option(
        timeout, "timeout", minimum=0, strict=True, unit=" s (or an aiohttp.ClientTimeout)"
    )
    # sock_connect, not connect: a per-request connect timer costs ~5% of throughput.
    return aiohttp.ClientTimeout(total=seconds, sock_connect=seconds)


def _refuse_overridden_knobs(name: str, policy: object, **knobs: object) -> None:
    """A policy object replaces the knobs it is built from: passing both is a mistake
    that would otherwise be silently ignored."""
    if policy is None:
        return
    given = [knob for knob, value in knobs.items() if value is not None]
    if given:
        raise ConfigurationError(
            f"{name}= replaces {', '.join(f'{k}=' for k in knobs)}; pass those to the "
            f"{name} itself (also given: {', '.join(given)})"
        )


async def _read_capped(content: aiohttp.StreamReader, first: bytes, cap: int) -> bytes | None:
    """The rest of a body after its first piece; None once it exceeds ``cap`` bytes.

    Counts what arrives (after any decompression), so neither a false Content-Length
    nor a compressed answer can make the client buffer more than ``cap``.
    """
    chunks = [first]
    size = len(first)
    while size <= cap:
        chunk = await content.readany()
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None


_RAW_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')


def _described(error: aiohttp.ClientError, secret: str) -> str:
    """aiohttp's error as text, without the answer bytes its parser quotes (``b'...'``).

    A malformed status line or header may echo the request (the token, perhaps cut
    short), so the quoted bytes are left out and the token is masked.
    """
    text = _RAW_BYTES.sub("b'...'", f"{type(error).__name__}: {error}")
    return text.replace(secret, "***")


def _without_secret(
    secret: str, raw: bytes | None, headers: Mapping[str, str]
) -> tuple[bytes | None, Mapping[str, str]]:
    """An answer's body and headers with every echo of ``secret`` replaced by ``***``.

    Proxies and debug pages echo request headers back (``Authorization`` included); what
    the server says goes into exceptions, logs and CLI output, so the token must not.
    """
    if raw is not None:
        for form in {secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/")}:
            raw = raw.replace(form.encode(), b"***")
    if any(secret in value for value in headers.values()):
        headers = CIMultiDict(
            (name, value.replace(secret, "***")) for name, value in headers.items()
        )
    return raw, headers


async def send_message(
    conversation_id: str,
    content: str,
    *,
    api_token: str | None = None,
    base_url: str | None = None,
    timeout: float | aiohttp.ClientTimeout = 30.0,
    max_retries: int | None = None,
    reconcile: bool = False,
    trust_env: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> Message:
    """One-shot send for bots: a client is opened, used once and closed.

    Token and base URL resolve exactly as ``OpenTrainClient`` does; the options mean
    what they mean there.  Share one ``OpenTrainClient`` instead when sending many.
    """
    validate_conversation_id(conversation_id)
    validate_content(content)
    async with OpenTrainClient(
        api_token,
        base_url,
        timeout=timeout,
        max_retries=max_retries,
        reconcile=reconcile,
        trust_env=trust_env,
        session=session,
    ) as client:
        return await client.send_message(conversation_id, content)


def _drop_foreign_context(error: BaseException) -> None:
    """Detach every implicit ``__context__`` that is not one of ours from ``error``'s chain.

    Our failures are raised outside the handler that caught aiohttp's error, whose
    request headers hold the token.  Python 3.10 still attaches such an error as
    ``__context__`` when a coroutine is resumed while one is being handled further up the
    stack (its exception state is per thread); error reporters walk that chain.
    """
    stack: list[BaseException] = [error]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.__context__ is not None and not isinstance(node.__context__, OpenTrainError):
            node.__context__ = None
        stack.extend(e for e in (node.__cause__, node.__context__) if isinstance(e, OpenTrainError))
