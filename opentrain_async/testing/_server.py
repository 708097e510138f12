"""FakeOpenTrain: an in-process, loopback HTTP fake of the OpenTrain public messaging API.

It speaks real HTTP (aiohttp's low-level server) so the code under test exercises its
whole transport stack, and it follows /work/shared/opentrain-api.md closely: the error
envelope, the order of checks, UTF-16 content lengths, cursors. On top it scripts the
failures a production client must survive (429s with every retry-hint flavour, HTML
502s, connections dropped before or after the commit, stalls) and records what it saw.

It is the HTTP adapter over three plain-Python parts: the ``World`` (accounts,
conversations, messages, events: ``_world``), zod-style validation (``_zod``) and the
``Script`` of canned answers (``_scripting``). It is deliberately independent of the
SDK so it cannot mask client bugs, and it is cheap per request (counters, no uuid4, no
logging) because benchmarks drive it hard. The endpoints and their table (``_ROUTES``)
are in ``_routes``; to add one, write a ``_h_<name>(self, call)`` method there and
register it in the table.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from aiohttp import web

from ._models import RecordedRequest
from ._routes import _INVALID_JSON, _SEND_PATH, API_PREFIX, _Call, _Routes
from ._scripting import Script, ScriptingMixin
from ._world import OTHER_USER, ApiError, World, _default_now
from ._zod import (
    MAX_CONTENT_UNITS,
    string_issues,
    type_issue,
)

__all__ = ["API_PREFIX", "DEFAULT_TOKEN", "OTHER_USER", "FakeOpenTrain"]

ADMIN_PREFIX: Final = "/__fake__/"
DEFAULT_TOKEN: Final = "ot_pat_fake_0123456789"  # noqa: S105 - a fake, public test token

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _world_method(
    method: Callable[Concatenate[World, _P], _R],
) -> Callable[Concatenate[FakeOpenTrain, _P], _R]:
    """A ``FakeOpenTrain`` method that calls the same method of its ``world``: setting up
    and reading the world is the world's own API, and these show in ``help()``."""

    @functools.wraps(method)
    def call(self: FakeOpenTrain, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return method(self.world, *args, **kwargs)

    return call


def _bearer(authorization: str | None) -> str | None:
    """The bearer token of an ``Authorization`` header, if it holds one."""
    if authorization is None:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class FakeOpenTrain(_Routes, ScriptingMixin):
    """A fake OpenTrain API server on a loopback port, with scripted failures and recording.

    Set up: ``add_conversation``, ``add_incoming_message``, ``add_token``, ``add_event``,
    ``add_proposal``, ``block_content``, ``set_rate_limit``; script failures: ``script``,
    ``throttle_next``, ``fail_next``, ``inject_fault``; assert: ``messages``, ``requests``,
    ``sends``, ``stats()``, ``peak_in_flight``. Guide: docs/testing.md.
    """

    add_token = _world_method(World.add_token)
    account = _world_method(World.account)
    add_conversation = _world_method(World.add_conversation)
    conversation = _world_method(World.conversation)
    add_incoming_message = _world_method(World.add_incoming_message)
    block_content = _world_method(World.block_content)
    add_event = _world_method(World.add_event)
    events = _world_method(World.events)
    add_proposal = _world_method(World.add_proposal)
    set_rate_limit = _world_method(World.set_rate_limit)
    messages = _world_method(World.messages)

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _default_now,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        latency: float = 0.0,
        record_requests: bool = True,
    ) -> None:
        """Configure (not start) the server; `clock` drives rate limits, `now` timestamps."""
        self._clock = clock
        self._host = host
        self._port = port
        self._record = record_requests
        self.latency = latency
        """Seconds each API request takes before it is processed (0: one event-loop turn)."""
        self.latency_jitter = 0.0
        """Each request's latency varies uniformly by +- this share of ``latency``."""
        self._random = random.Random(seed)
        bits = self._random.getrandbits(64)
        # uuid-shaped request ids: a seeded random prefix plus a counter (no uuid4 per request)
        self._rid_prefix = (
            "-".join(
                (f"{bits >> 32:08x}", f"{bits >> 16 & 0xFFFF:04x}", f"4{bits >> 4 & 0xFFF:03x}", "")
            )
            + f"8{bits & 0xFFF:03x}-"
        )
        self._rid_counter = 0
        self._now = None if now is _default_now else now
        """A ``now`` of the test's (FakeTime's): each answer's ``Date`` follows it, as a
        real server's clock stamps both ``Date`` and ``createdAt``."""
        self.world = World(token, clock=clock, now=now)
        """The accounts, conversations, messages and events behind the API."""
        self._script = Script(self._random)

        self._requests: list[RecordedRequest] = []
        self._sends: list[RecordedRequest] = []
        self._in_flight = 0
        self._stats_zero()

        self._runner: web.ServerRunner | None = None
        self._base_url: str | None = None
        self._stop: asyncio.Future[None] | None = None
        self._sleepers: set[asyncio.Task[Any]] = set()
        self.info: dict[str, Any] = {}
        """What ``GET /__fake__/info`` answers (set by ``python -m opentrain_async.testing``)."""
        self.echo_cursor_bug = False
        """Simulate a buggy server: every page asked for with a cursor echoes that cursor."""

    def __repr__(self) -> str:
        """Where it serves and what it holds; never a token."""
        where = self._base_url or "not started"
        return (
            f"FakeOpenTrain({where}, accounts={self.world.accounts}, "
            f"conversations={self.world.conversations}, requests={len(self._requests)})"
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start serving on `host` (a free port unless one was given)."""
        if self._runner is not None:
            raise RuntimeError("FakeOpenTrain is already started")
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        server = web.Server(self._dispatch, access_log=None)
        runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving; requests stalled by a fault are woken and their connections dropped."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)
        if self._sleepers:
            await asyncio.wait(set(self._sleepers))
        await runner.cleanup()

    async def __aenter__(self) -> FakeOpenTrain:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.close()

    @property
    def base_url(self) -> str:
        """The server origin, e.g. ``http://127.0.0.1:PORT`` (no /api prefix)."""
        if self._base_url is None:
            raise RuntimeError("FakeOpenTrain is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """``base_url`` plus the ``/api/public/v1`` prefix."""
        return self.base_url + API_PREFIX

    @property
    def token(self) -> str:
        """The default valid token (all messaging scopes, claimed, writes enabled)."""
        return self.world.default.token

    @property
    def user_id(self) -> str:
        """The user id behind the default token."""
        return self.world.default.user_id

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (API and unknown paths), in arrival order."""
        return self._requests

    @property
    def sends(self) -> list[RecordedRequest]:
        """The recorded POST /messages requests only."""
        return self._sends

    def clear_requests(self) -> None:
        """Forget recorded requests (stats are kept)."""
        self._requests.clear()
        self._sends.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests handled at once since start (or reset_stats)."""
        return self._peak_in_flight

    def stats(self) -> dict[str, int]:
        """Counters: requests, sends, committed, rate_limited, faults, peak, and
        ``duplicates`` (pairs of conversation and content stored more than once) and
        ``distinct`` (pairs stored at least once): committed - distinct extra copies."""
        return {
            "distinct": self.world.distinct,
            "requests": self._n_requests,
            "sends": self._n_sends,
            "committed": self.world.committed,
            "rate_limited": self._n_rate_limited + self.world.throttled,
            "faults": self._n_faults,
            "duplicates": self.world.duplicates,
            "peak_in_flight": self._peak_in_flight,
        }

    def reset_stats(self) -> None:
        """Zero the counters (duplicate tracking restarts too); recorded requests are kept."""
        self._stats_zero()
        self.world.reset_counts()

    def _stats_zero(self) -> None:
        """Set every counter to zero (peak to the current concurrency)."""
        self._n_requests = 0
        self._n_sends = 0
        self._n_rate_limited = 0
        self._n_faults = 0
        self._peak_in_flight = self._in_flight

    # ------------------------------------------------------------------ plumbing

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """Entry point for every request: record, route, authenticate, answer."""
        path = request.path
        if path.startswith(ADMIN_PREFIX):
            return await self._admin(request)
        self._in_flight += 1
        if self._in_flight > self._peak_in_flight:
            self._peak_in_flight = self._in_flight
        self._n_requests += 1
        self._rid_counter += 1
        rid = f"{self._rid_prefix}{self._rid_counter:012x}"
        method = request.method
        is_send = method == "POST" and path == _SEND_PATH
        if is_send:
            self._n_sends += 1
        token = _bearer(request.headers.get("Authorization"))
        record = self._record_request(request, rid, token, is_send) if self._record else None
        call: _Call | None = None
        try:
            # Yield at least one loop turn, like a real server doing I/O: requests that
            # arrive together are then in flight together, so peak_in_flight means something.
            latency = self.latency
            if self.latency_jitter:
                latency *= 1 + self.latency_jitter * (2 * self._random.random() - 1)
            await asyncio.sleep(latency)
            call = await self._read_call(request, rid, record)
            if call is None:  # the client went away before its body was read
                return web.Response(status=500)
            scripted: web.StreamResponse | None = None
            if self._script:
                rule = self._script.take(method, path.removeprefix(API_PREFIX), after_commit=False)
                if rule is not None:
                    scripted = await self._answer(rule, call)
            response = scripted or await self._route(method, path, token, call)
        except ApiError as exc:
            response = self._error(exc, rid)
        finally:
            self._in_flight -= 1
        if record is not None:
            record.status = None if call is not None and call.dropped else response.status
        if self._now is not None and not response.prepared:
            stamp = self._now().astimezone(timezone.utc)
            response.headers["Date"] = email.utils.format_datetime(stamp, usegmt=True)
        return response

    def _record_request(
        self, request: web.BaseRequest, rid: str, token: str | None, is_send: bool
    ) -> RecordedRequest:
        """What ``requests`` (and ``sends``) show of a request; never its token."""
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path.partition("?")[0],
            query=dict(request.query),
            headers={
                k: ("Bearer ***" if k.lower() == "authorization" else v)
                for k, v in request.headers.items()
            },
            token=token,
            received_at=self._clock(),
            request_id=rid,
        )
        self._requests.append(record)
        if is_send:
            self._sends.append(record)
        return record

    async def _read_call(
        self, request: web.BaseRequest, rid: str, record: RecordedRequest | None
    ) -> _Call | None:
        """The request with its body read and parsed (into its record too); None when
        the client went away before its body was read (nothing to answer)."""
        try:
            body = await request.read() if request.body_exists else b""
        except web.HTTPException as exc:
            raise ApiError(400, f"Unreadable request body: {exc.reason}") from None
        except ConnectionError:
            if record is not None:
                record.status = None
            return None
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = _INVALID_JSON
        if record is not None:
            record.raw_body = body
            record.json = None if parsed is _INVALID_JSON else parsed
            if isinstance(parsed, dict):
                cid = parsed.get("conversationId")
                record.conversation_id = cid if isinstance(cid, str) else None
            elif "conversationId" in record.query:
                record.conversation_id = record.query["conversationId"]
        return _Call(request, rid, body, parsed, record)

    async def _route(
        self, method: str, path: str, token: str | None, call: _Call
    ) -> web.StreamResponse:
        """Authenticate and run the route's handler."""
        handler = self._resolve(method, path, call)
        if handler is None:
            raise ApiError(404, f"No route for {method} {path}")
        account = self.world.find(token)
        if account is None:
            raise ApiError(401, "Missing bearer token" if token is None else "Invalid API token")
        call.account = account
        return await handler(self, call)

    async def _admin(self, request: web.BaseRequest) -> web.Response:
        """Out-of-band control for a server in another process (not recorded, no auth).

        ``GET stats``, ``POST reset-stats``, and ``POST inject`` with ``{"conversationId",
        "content", "senderUserId"?}``: an incoming message, as ``add_incoming_message``.
        """
        name = request.path[len(ADMIN_PREFIX) :]
        if request.method == "POST" and name == "inject":
            return await self._admin_inject(request)
        if request.method == "GET" and name == "info":
            return self._json(200, self.info, "admin")
        if request.method == "GET" and name == "stats":
            return self._json(200, self.stats(), "admin")
        if request.method == "POST" and name == "reset-stats":
            self.reset_stats()
            return self._json(200, self.stats(), "admin")
        return self._error(ApiError(404, "Unknown admin endpoint"), "admin")

    async def _admin_inject(self, request: web.BaseRequest) -> web.Response:
        """POST /__fake__/inject: store a message from someone else, announce it."""
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(ApiError(400, "Body must be a JSON object"), "admin")
        issues = string_issues(body, "conversationId", 1, None)
        issues += string_issues(body, "content", 1, MAX_CONTENT_UNITS)
        sender = body.get("senderUserId", OTHER_USER)
        if not isinstance(sender, str) or not sender:
            issues.append(type_issue("senderUserId", "string", sender, missing=False))
        if issues:
            return self._error(ApiError(400, "Invalid inject body", {"issues": issues}), "admin")
        if not self.world.has_conversation(body["conversationId"]):
            return self._error(ApiError(404, "Conversation not found"), "admin")
        message = self.add_incoming_message(
            body["conversationId"], body["content"], sender_user_id=sender
        )
        return self._json(201, {"ok": True, "message": message}, "admin")
