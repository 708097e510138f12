"""The request pipeline's aiohttp session: ours (opened on first use, closed by
``close``) or the caller's (used as given, our options per request).

Behind a proxy the token goes per request, never in the session's headers (aiohttp
would hand it to the proxy); on a caller's session each request carries our headers,
timeout and status handling.  ``SessionMixin`` is a base of ``Pipeline``; a
``with_options`` copy (``_parent``) uses its parent's session and closes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

import opentrain_async._telemetry as _telemetry

from ._errors import ConfigurationError
from ._pacing import Pacer
from ._proxy import Proxy

__all__ = ["SessionMixin"]

logger = logging.getLogger("opentrain_async")

_OWN_SESSION_OPTIONS: dict[str, Any] = {"allow_redirects": False}


class SessionMixin:
    """Opening, reusing and closing the session; what each request adds to it."""

    _parent: SessionMixin | None
    _pacer: Pacer
    _proxy: Proxy | None
    _session: aiohttp.ClientSession | None
    _owns_session: bool
    _headers: dict[str, str]
    _request_options: dict[str, Any]
    closed: bool
    stats: Any  # ClientStats (``_pipeline``, which imports this module)
    timeout: aiohttp.ClientTimeout
    max_concurrency: int

    def open(self) -> aiohttp.ClientSession:
        """Reopen after ``close`` (``async with`` again) and make sure of a session;
        a backend that closed with us (``PacingFallback.reopen``) serves us again."""
        if self.closed and self._parent is None:
            reopen = getattr(self._pacer.backend, "reopen", None)
            if reopen is not None:
                reopen()
            _telemetry.watch(self._pacer, self.stats)  # its gauges again
        self.closed = False
        return self.ensure_session()

    async def close(self) -> None:
        """Stop sending; close the session if it is ours and the pacer's Redis backend.

        A ``with_options`` copy only stops itself: the session is its parent's.
        """
        was_closed, self.closed = self.closed, True
        if self._parent is not None:
            return
        try:
            if not was_closed:  # once per client: a shared backend counts its users
                await self._pacer.flushed()
                await self._pacer.backend.aclose()
        except Exception as exc:  # a custom backend's: its type only (text may hold a secret)
            logger.warning(
                "closing the pacing backend %s failed (%s); the client closed anyway",
                type(self._pacer.backend).__name__,
                type(exc).__name__,
            )
        finally:
            _telemetry.unwatch(self.stats)  # a closed client's gauges end now
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
        self.check_loop()
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

    def check_loop(self) -> None:
        """Refuse a call from another event loop than the session's, before it is paced.

        A client kept across ``asyncio.run()`` calls: its session, connections and
        semaphore belong to a loop that has ended (aiohttp: "Event loop is closed").  A
        client shared with another thread's loop while its own runs (or kept from a loop
        not closed yet): aiohttp raised a bare ``RuntimeError`` (a future attached to a
        different loop), after the request had taken the pacer's and the pool's state
        that loop does not own.
        """
        root = self
        while root._parent is not None:
            root = root._parent
        session = root._session
        if session is None or session._loop is asyncio.get_running_loop():
            return
        if session._loop.is_closed():
            raise ConfigurationError(
                "this OpenTrainClient was opened under an event loop that has ended (a "
                "second asyncio.run()?); open one client per event loop"
            )
        raise ConfigurationError(
            "this OpenTrainClient is open under another event loop (another thread's, or "
            "an earlier loop not closed yet); open one client per event loop"
        )

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
