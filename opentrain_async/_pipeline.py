"""The request pipeline: one aiohttp session, the pacer, the semaphore, one attempt, retries.

Every request goes through the same steps: wait for the pacer (rate control shared by
the whole client), take the semaphore (``max_concurrency`` requests on the wire at
most), send, release the semaphore, then classify the answer (``error_for``).  Retries
wrap that pipeline (see ``_retry``), so a backoff never holds the semaphore or a
connection.

``Pipeline`` knows nothing of what is built on it (as httpx's transports know nothing of
its client): ``OpenTrainClient`` builds one and hands its ``attempt`` and
``retry_after`` to delivery, and the pipeline itself (a ``Requester``: ``request``) to
the reads.  ``with_options`` returns a pipeline with another timeout or retry budget over
the same session, pacer, semaphore, stats and URL cache.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import attrs
from multidict import CIMultiDict
from yarl import URL

import opentrain_async._telemetry as _telemetry

from ._config import Settings, without_userinfo
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    NotAttemptedError,
    OpenTrainError,
    RateLimitError,
    RedirectError,
    UnexpectedResponseError,
    error_from_response,
)
from ._json import json_dumps, json_loads
from ._pacing import Pacer
from ._proxy import Proxy
from ._raw import RawSink
from ._retry import RetryPolicy
from ._validation import check_option
from ._version import __version__

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ClientStats",
    "Pipeline",
    "SendGate",
    "as_client_timeout",
]

logger = logging.getLogger("opentrain_async")

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


class SendGate(Protocol):
    """Whoever runs a send (a bulk engine), passed to ``attempt`` with it: ``closing``
    once its consumer has left, after which no new send may start."""

    @property
    def closing(self) -> bool: ...


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


class Pipeline:
    """Session, pacer, semaphore, one attempt, retries: how every request of a client goes.

    ``session`` is the caller's (used as given, our options per request) or None (one of
    ours is opened on first use and closed by ``close``).  ``pacer`` paces sends (not
    GETs); ``stats`` is counted into.  A ``with_options`` copy shares all of that and
    differs only in its timeout or retry policy; closing it closes nothing shared.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        pacer: Pacer,
        retry: RetryPolicy,
        timeout: aiohttp.ClientTimeout,
        max_concurrency: int,
        stats: ClientStats,
        session: aiohttp.ClientSession | None = None,
        proxy: Proxy | None = None,
        user_agent: str | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._root = settings.api_root
        self._pacer = pacer
        self.retry_policy = retry
        """The retry rules this pipeline applies."""
        self.timeout = timeout
        """The timeout of each request (connect, read: aiohttp's)."""
        self.max_concurrency = max_concurrency
        self.stats = stats
        self._max_response_bytes = max_response_bytes
        self._proxy = proxy
        self._clock = clock
        self._parent: Pipeline | None = None
        """The pipeline whose session a ``with_options`` copy shares (None: this one)."""
        self.raw_sink: RawSink | None = None
        """Where a ``with_raw_response`` call's copy records each successful answer."""
        self._semaphore = asyncio.Semaphore(max_concurrency)
        _telemetry.watch(pacer, stats)  # the pacer and in-flight gauges
        self._urls: dict[str, URL] = {}  # parsed once per path, not per request
        self._session = session
        self._owns_session = session is None
        self.closed = False
        """True once ``close`` was called (until ``open``)."""
        self._headers = {
            **_JSON_HEADERS,
            "Authorization": f"Bearer {settings.token}",
            "User-Agent": user_agent or f"opentrain-async/{__version__}",
        }
        # What each request must carry that the session does not (see _wire_options):
        # redirects are never followed (the request would go to another origin).
        self._request_options: dict[str, Any] = self._wire_options(None)

    @property
    def pacer(self) -> Pacer:
        """The rate control shared by every send of this pipeline and its copies."""
        return self._pacer

    # -- the session -------------------------------------------------------------------

    def open(self) -> aiohttp.ClientSession:
        """Reopen after ``close`` (``async with`` again) and make sure of a session."""
        self.closed = False
        return self.ensure_session()

    async def close(self) -> None:
        """Stop sending; close the session if it is ours and the pacer's Redis backend.

        A ``with_options`` copy only stops itself: the session is its parent's.
        """
        self.closed = True
        if self._parent is not None:
            return
        await self._pacer.backend.aclose()
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def ensure_session(self) -> aiohttp.ClientSession:
        """The open session requests go through (ours is opened on first use)."""
        if self.closed:
            raise ConfigurationError(
                "this OpenTrainClient was closed; open a new one (or use `async with`)"
            )
        if self._parent is not None:
            return self._parent.ensure_session()
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
                timeout=self.timeout,
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
        raw_sink: RawSink | None = None,
    ) -> Pipeline:
        """A copy with another timeout or retry budget (or recording its answers into
        ``raw_sink``), over the same session, pacer, semaphore and stats (cheap: no new
        connection); closing it stops only the copy."""
        copy = object.__new__(Pipeline)
        copy.__dict__.update(self.__dict__)
        copy._parent = self._parent or self
        copy._session = None
        copy.closed = False
        if max_retries is not None:
            copy.retry_policy = attrs.evolve(self.retry_policy, max_retries=max_retries)
        if timeout is not None:
            copy.timeout = as_client_timeout(timeout)
            copy._request_options = copy._wire_options(copy.timeout)
        if raw_sink is not None:
            copy.raw_sink = raw_sink
        return copy

    def for_call(
        self, timeout: float | aiohttp.ClientTimeout | None, max_retries: int | None
    ) -> Pipeline:
        """This pipeline, or a ``with_options`` copy when one call overrides an option."""
        if timeout is None and max_retries is None:
            return self
        return self.with_options(timeout=timeout, max_retries=max_retries)

    def _wire_options(self, timeout: aiohttp.ClientTimeout | None) -> dict[str, Any]:
        """What each request must carry that the session does not: headers and timeout on
        a caller's session, proxy credentials, a copy's own timeout."""
        root = self._parent or self
        options: dict[str, Any] = dict(_OWN_SESSION_OPTIONS)
        if not root._owns_session:
            # A caller's session: also our own status handling, whatever its
            # raise_for_status says.
            options.update(headers=self._headers, timeout=self.timeout, raise_for_status=False)
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

    # -- one request ---------------------------------------------------------------------

    async def attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        gate: SendGate | None = None,
    ) -> tuple[int, Any]:
        """One HTTP attempt: pace, take the semaphore, send, classify the answer.  A
        ``gate`` that is ``closing`` by then refuses the send (``NotAttemptedError``).

        Kept in one frame on purpose: every coroutine layer is re-entered each time
        aiohttp resumes, so the send path stays shallow.
        """
        # Pacing counts sends only: the limit is on sending, and reads (read-backs, a
        # resume's settling) would otherwise inflate the first estimate of the rate.
        pacer = self._pacer if method != "GET" else None
        admitted = 0.0
        if pacer is not None:
            fast = pacer.try_acquire()
            admitted = fast if fast is not None else await _telemetry.acquire(pacer)
        url = self._urls.get(path)
        if url is None:
            url = URL(self._root + path)
            if len(self._urls) < _URL_CACHE_SIZE:  # paths with ids (proposals) are unbounded
                self._urls[path] = url
        # Failures are raised below, outside the ``except`` that caught aiohttp's error,
        # so that it is not attached as ``__context__``: aiohttp's errors carry the
        # request's headers, and with them the token.
        failure: OpenTrainError | None = None
        telemetry = None
        try:
            session = self.ensure_session()
            # acquire/release rather than ``async with``: two fewer coroutine frames on
            # the hottest path, same semantics.
            semaphore = self._semaphore
            await semaphore.acquire()
            stats = self.stats  # shared with every with_options copy
            stats.in_flight += 1
            try:
                if gate is not None and gate.closing:  # a send_many loop that was left
                    raise _not_started()
                stats.requests += 1
                telemetry = _telemetry.request_start(method, path, url.host, url.port)
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
                timeout = self.timeout
                failure = APITimeoutError(
                    f"{method} {path}: no answer within "
                    f"{timeout.total or timeout.sock_read or timeout.connect}s"
                )
            except aiohttp.ClientError as exc:
                if isinstance(exc.__cause__, OpenTrainError):
                    # A trace hook of ours refused the request as aiohttp was about to
                    # write it (the Redis journal's fencing): that error, nothing sent.
                    failure = exc.__cause__
                else:
                    failure = APIConnectionError(
                        f"{method} {path}: connection failed: "
                        f"{_described(exc, self._settings.token)}"
                    )
            finally:
                stats.in_flight -= 1
                semaphore.release()
        except BaseException as exc:  # the pacer must hear back about every admitted request
            _telemetry.request_end(telemetry, None, None, exc)
            if pacer is not None:
                pacer.on_error(admitted)
            raise
        if telemetry is not None:  # every attempt: its span, metrics and log record
            _telemetry.request_end(
                telemetry,
                None if failure is not None else status,
                None if failure is not None else self._request_id(headers),
                failure,
            )
        if failure is not None:
            if pacer is not None:
                pacer.on_error(admitted)
            try:
                raise failure
            finally:  # Python 3.10 may attach an exception handled up the stack
                failure.__context__ = None
        if raw is not None and 200 <= status < 300:
            if pacer is not None:
                pacer.on_success(admitted)
            if self.raw_sink is not None:  # a client.with_raw_response.<method>(...) call
                self.raw_sink.append(
                    (status, _without_secret(self._settings.token, None, headers)[1])
                )
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
        error = self.error_for(status, raw, headers, method, path)
        if isinstance(error, RateLimitError):
            self.stats.rate_limited += 1
            if pacer is not None:
                # A hint past the caller's cap fails this request at once: nor may it
                # hold every other request back for longer than that cap.
                hint = error.retry_after
                if hint is not None:
                    hint = min(hint, self.retry_policy.max_retry_after)
                await pacer.on_throttle(admitted, hint)
        elif pacer is not None:
            pacer.on_error(admitted)
        raise error

    def _request_id(self, headers: Mapping[str, str]) -> str | None:
        # A server may echo the request: the token never reaches a log record or span.
        found = headers.get("X-Request-Id")
        return None if found is None else _masked(found, _secret_forms(self._settings.token))

    def error_for(
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
        """One request, retried under the policy (``OpenTrainClient.request`` says how)."""
        data = None if json_body is None else json_dumps(json_body)
        if idempotent is None:
            idempotent = method == "GET"
        try:
            return await self.attempt(method, path, params, data)
        except OpenTrainError as exc:
            first_failure = exc
        try:
            return await self.retry_after(first_failure, method, path, params, data, idempotent)
        except OpenTrainError as exc:
            _drop_foreign_context(exc)
            raise

    async def retry_after(
        self,
        first_failure: OpenTrainError,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        idempotent: bool = False,
        gate: SendGate | None = None,
        paced: bool = False,
    ) -> tuple[int, Any]:
        """Continue after a failed first attempt under the retry policy (tenacity).
        ``gate``: the bulk engine behind this send (see ``attempt``), None otherwise.
        ``paced``: a bulk send's POST, whose first retry after a rounded one-second hint
        waits for the pacer (``RetryPolicy.compute_wait``), not the whole second.

        Most requests succeed first time, so tenacity is only set up here, once an
        attempt has failed; it replays that failure as attempt 1 so that counting,
        waits and hooks are exactly as if it had run every attempt.
        """
        if self.retry_policy.retry_reason(first_failure, idempotent=idempotent) is None:
            raise first_failure
        pending: OpenTrainError | None = first_failure

        async def attempt() -> tuple[int, Any]:
            nonlocal pending
            if pending is not None:
                failure, pending = pending, None
                raise failure
            with _telemetry.attempt(retrying.statistics.get("attempt_number", 1)):
                return await self.attempt(method, path, params, data, gate)

        # A bulk send's POST: its retry waits for the pacer, and a 429 never ends it.
        paced = paced and method != "GET"
        retrying = self.retry_policy.retrying(method, path, idempotent=idempotent, paced=paced)
        try:
            return await retrying(attempt)
        finally:
            self.stats.retries += retrying.statistics.get("attempt_number", 1) - 1


def _not_started() -> NotAttemptedError:
    return NotAttemptedError(
        "not sent: the loop over send_many's outcomes ended before this send started"
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
    forms = _secret_forms(secret)
    if raw is not None:
        for form in forms:
            raw = raw.replace(form.encode(), b"***")
    if any(form in value for value in headers.values() for form in forms):
        headers = CIMultiDict((name, _masked(value, forms)) for name, value in headers.items())
    return raw, headers


def _masked(value: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        value = value.replace(form, "***")
    return value


@functools.lru_cache(maxsize=8)
def _secret_forms(secret: str) -> tuple[str, ...]:
    """The ways an echo spells ``secret``: verbatim, JSON-escaped (``\\/`` too) and
    URL-encoded (as a proxy's debug page quotes a header); longest first."""
    escaped = json.dumps(secret)[1:-1]
    forms = {secret, escaped, secret.replace("/", "\\/"), escaped.replace("/", "\\/")}
    forms |= {quote(secret, safe=""), quote(secret)}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


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
