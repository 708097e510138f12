"""The request pipeline: one aiohttp session, the pacer, the semaphore, one attempt, retries.

Every request goes through the same steps: wait for the pacer (rate control shared by
the whole client), take the semaphore (``max_concurrency`` requests on the wire at
most), send, release the semaphore, then classify the answer (``_answers``: typed
errors, the token scrubbed).  Retries wrap that pipeline (see ``_retry``), so a backoff
never holds the semaphore or a connection.  The session itself is ``_session``'s.

``Pipeline`` knows nothing of what is built on it (as httpx's transports know nothing of
its client): ``OpenTrainClient`` builds one and hands its ``attempt`` and
``retry_after`` to delivery, and the pipeline itself (a ``Requester``: ``request``) to
the reads.  ``with_options`` returns a pipeline with another timeout or retry budget over
the same session, pacer, semaphore, stats and URL cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

import aiohttp
import attrs
from yarl import URL

import opentrain_async._telemetry as _telemetry

from ._answers import (
    drop_foreign_context,
    error_for,
    failure_for,
    masked,
    read_capped,
    secret_forms,
    without_secret,
)
from ._config import Settings
from ._errors import (
    APIError,
    OpenTrainError,
    RateLimitError,
    UnexpectedResponseError,
)
from ._json import json_dumps, json_loads
from ._pacing import Pacer
from ._proxy import Proxy
from ._raw import RawSink
from ._retry import RetryPolicy
from ._session import SessionMixin
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
    """Whoever runs a send (a bulk engine), passed to ``attempt`` with it: ``refusal`` is
    what a send about to start ends with once none may (its consumer left, or a failure
    showed that no send can succeed), None until then."""

    @property
    def refusal(self) -> OpenTrainError | None: ...


def as_client_timeout(timeout: object) -> aiohttp.ClientTimeout:
    """``timeout=`` as aiohttp wants it: seconds for the whole request, or your own
    ``aiohttp.ClientTimeout`` (to tell connecting from reading apart)."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        for field in ("total", "connect", "sock_read", "sock_connect", "ceil_threshold"):
            value = getattr(timeout, field, None)
            if value is not None:  # aiohttp takes a negative or NaN field as no timeout
                check_option(value, f"timeout (ClientTimeout.{field})", minimum=0, unit=" s")
        return timeout
    seconds = check_option(
        timeout, "timeout", minimum=0, strict=True, unit=" s (or an aiohttp.ClientTimeout)"
    )
    # sock_connect, not connect: a per-request connect timer costs ~5% of throughput.
    return aiohttp.ClientTimeout(total=seconds, sock_connect=seconds)


class Pipeline(SessionMixin):
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
        self._parent = None
        """The pipeline whose session a ``with_options`` copy shares (None: this one)."""
        self.raw_sink: RawSink | None = None
        """Where a ``with_raw_response`` call's copy records each successful answer."""
        self.answer_headers: Mapping[str, str] | None = None
        """The headers of the latest 2xx answer: the server's clock (``Date``, ``Age``),
        read by ``Delivery`` to date a 201's message only when it looks old (any 2xx
        will do: its tolerance is a minute, so answers overtaking each other change
        nothing)."""
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

    # -- one request ---------------------------------------------------------------------

    async def attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        gate: SendGate | None = None,
        again: bool = False,
    ) -> tuple[int, Any]:
        """One HTTP attempt: pace, take the semaphore, send, classify the answer.  A ``gate``
        ``closing`` by then refuses the send; ``again`` (``_again``'s) raises an expired grant."""
        self.check_loop()  # another thread's loop: refused before the pacer is touched
        # Pacing counts sends only: reads would inflate the first estimate of the rate.
        pacer = self._pacer if method != "GET" else None
        admitted = 0.0
        if pacer is not None:
            fast = pacer.try_acquire()
            admitted = fast if fast is not None else await _telemetry.acquire(pacer)
        url = self._urls.get(path) or self._url(path)  # a URL with a host is truthy
        # Failures are raised below, outside the ``except`` that caught aiohttp's error: as
        # its ``__context__``, the request's headers in it would carry the token.
        failure: OpenTrainError | None = None
        telemetry = None
        try:
            semaphore = self._semaphore  # acquire/release, not ``async with``: two fewer
            await semaphore.acquire()  # coroutine frames, same semantics
            stats = self.stats  # shared with every with_options copy
            stats.in_flight += 1
            try:
                if gate is not None and (refusal := gate.refusal) is not None:  # left, halted
                    raise refusal
                session = self.ensure_session()  # after the wait: closed meanwhile, typed
                if pacer is not None and pacer.expired(admitted):  # the last check
                    admitted = _renewed(pacer, admitted)
                stats.requests += 1
                telemetry = _telemetry.request_start(method, path, url.host, url.port)
                status, headers, raw = await self._exchange(session, method, url, params, data)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                failure = failure_for(
                    exc, method, path, timeout=self.timeout, token=self._settings.token
                )
            finally:
                stats.in_flight -= 1
                semaphore.release()
        except _GrantExpired:  # stopped or starved since its grant: given back, paced anew
            if again:
                raise
            return await self._again(method, path, params, data, gate)
        except BaseException as exc:  # the pacer must hear back about every admitted request
            _telemetry.request_end(telemetry, None, None, exc)
            if pacer is not None:
                pacer.on_error(admitted)
            raise
        if failure is not None:
            _fail(telemetry, pacer, admitted, failure)
        if telemetry is not None:  # every attempt: its span, metrics and log record
            _telemetry.request_end(telemetry, status, self._request_id(headers), None)
        if raw is not None and 200 <= status < 300:
            return self._success(pacer, admitted, status, headers, raw, method, path)
        raise await self._refusal(pacer, admitted, status, raw, headers, method, path)

    async def _again(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        gate: SendGate | None,
    ) -> tuple[int, Any]:
        """The attempt again, its expired grant given back (``_renewed``), until one
        goes.  A loop, not ``attempt`` inside ``attempt``: behind many others on a slow
        server, a send expired at every turn (600 sends, one slot, a 1.5 s server: 107
        raised RecursionError)."""
        while True:
            try:
                return await self.attempt(method, path, params, data, gate, again=True)
            except _GrantExpired:
                continue
            except BaseException as exc:
                if isinstance(exc.__context__, _GrantExpired):  # raised while it was handled
                    exc.__context__ = None
                raise

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        params: Mapping[str, str] | None,
        data: bytes | None,
    ) -> tuple[int, Mapping[str, str], bytes | None]:
        """Send it: the answer's status, headers and body (None: over the byte cap)."""
        # Awaiting the request (not ``async with``) keeps aiohttp's frames one level
        # shallower; the response is released below either way.
        response = await session.request(
            method, url, params=params, data=data, **self._request_options
        )
        try:
            # The body is read with a size cap: an answer usually arrives in one piece,
            # and only a longer one takes the counting loop.
            content = response.content
            body = await content.readany()
            cap = self._max_response_bytes
            if content.at_eof() and len(body) <= cap:
                return response.status, response.headers, body
            return response.status, response.headers, await read_capped(content, body, cap)
        finally:
            response.release()

    def _url(self, path: str) -> URL:
        """The URL of ``path``, parsed once (paths with ids, proposals, are unbounded:
        the cache holds the first few)."""
        url = URL(self._root + path)
        if len(self._urls) < _URL_CACHE_SIZE:
            self._urls[path] = url
        return url

    def _success(
        self,
        pacer: Pacer | None,
        admitted: float,
        status: int,
        headers: Mapping[str, str],
        raw: bytes,
        method: str,
        path: str,
    ) -> tuple[int, Any]:
        """A 2xx answer read whole: the pacer hears of it, the body is decoded."""
        if pacer is not None:
            pacer.on_success(admitted)
        self.answer_headers = headers
        if self.raw_sink is not None:  # a client.with_raw_response.<method>(...) call
            self.raw_sink.append((status, without_secret(self._settings.token, None, headers)[1]))
        try:
            return status, json_loads(raw)
        except (ValueError, UnicodeDecodeError):
            pass  # raised below, outside the handler: the decoder's error holds the body
        raise UnexpectedResponseError(
            f"HTTP {status} with a body that is not JSON",
            status=status,
            request_id=self._request_id(headers),
            method=method,
            path=path,
        )

    async def _refusal(
        self,
        pacer: Pacer | None,
        admitted: float,
        status: int,
        raw: bytes | None,
        headers: Mapping[str, str],
        method: str,
        path: str,
    ) -> APIError:
        """The error for an answer that is not a readable 2xx, once the pacer heard of
        it (a 429 with its hint)."""
        error = error_for(
            status,
            raw,
            headers,
            method,
            path,
            token=self._settings.token,
            max_response_bytes=self._max_response_bytes,
        )
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
        return error

    def _request_id(self, headers: Mapping[str, str]) -> str | None:
        # A server may echo the request: the token never reaches a log record or span.
        found = headers.get("X-Request-Id")
        return None if found is None else masked(found, secret_forms(self._settings.token))

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
            drop_foreign_context(exc)
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
        ``paced``: a bulk send's POST, whose retries after a rounded one-second hint
        wait for the pacer (``RetryPolicy.compute_wait``), not the whole second.

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
        retrying = self.retry_policy.retrying(
            method, path, idempotent=idempotent, paced=paced, reset_paced=self._pacer.paces_reset
        )
        try:
            return await retrying(attempt)
        finally:
            self.stats.retries += retrying.statistics.get("attempt_number", 1) - 1


def _fail(
    telemetry: Any, pacer: Pacer | None, admitted: float, failure: OpenTrainError
) -> NoReturn:
    """End a request that got no answer: its telemetry, the pacer's slot, the failure."""
    _telemetry.request_end(telemetry, None, None, failure)
    if pacer is not None:
        pacer.on_error(admitted)
    try:
        raise failure
    finally:  # Python 3.10 may attach an exception handled up the stack
        failure.__context__ = None


class _GrantExpired(Exception):
    """The pacer's grant outlived its deadline before the write (``Pacer.expired``),
    given back, and no slot is due now: the send waits in the pacer's line again."""


def _renewed(pacer: Pacer, admitted: float) -> float:
    """Give back a grant that expired before the write; take a fresh one if a slot is
    due now, keeping the connection slot (at the back of the line, each send behind a
    slow server expired at every turn); else ``_GrantExpired``."""
    pacer.give_back(admitted)
    fresh = pacer.try_acquire()
    if fresh is None:
        raise _GrantExpired
    if pacer.expired(fresh):  # a slot held from a window that has ended since
        pacer.give_back(fresh)
        raise _GrantExpired
    return fresh
