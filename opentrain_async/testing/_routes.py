"""The fake server's API routes: the per-request ``_Call``, the handlers of each
endpoint and the route table, and the plumbing they answer with (JSON, the error
envelope, a dropped connection, a scripted answer).

``_Routes`` is a mixin of ``FakeOpenTrain`` (``_server``): a handler reads the world
and the script the server holds.  To add an endpoint, write a ``_h_<name>(self,
call)`` method here and register it in ``_ROUTES``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from ._models import FakeAccount, RecordedRequest
from ._scripting import Rule, Script, _phrase
from ._world import ApiError, World, decode_cursor
from ._zod import (
    MAX_CONTENT_UNITS,
    enum_param,
    int_param,
    issue,
    js_type,
    string_issues,
)

__all__ = ["API_PREFIX"]

API_PREFIX: Final = "/api/public/v1"

_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
}
_INVALID_JSON: Final = object()


def _code(status: int) -> str:
    """The envelope code for an HTTP status."""
    return _CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")


def _response(body: bytes, status: int, content_type: str, headers: dict[str, str]) -> web.Response:
    """A response whose Content-Type is ``content_type`` unless ``headers`` name one (any
    case: scripted as a header, it is the one sent).  Always as a header: aiohttp's
    ``content_type=`` refuses a Content-Type header beside it, and a ``charset``
    parameter in it, with a ValueError that became a 500."""
    if not any(name.lower() == "content-type" for name in headers):
        headers = {**headers, "Content-Type": content_type}
    return web.Response(body=body, status=status, headers=headers)


def _dumps(payload: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


class _Call:
    """Per-request context handed to route handlers."""

    __slots__ = ("account", "body", "dropped", "json", "params", "record", "request", "rid")

    def __init__(
        self,
        request: web.BaseRequest,
        rid: str,
        body: bytes,
        parsed: Any,
        record: RecordedRequest | None,
    ) -> None:
        self.request = request
        self.rid = rid
        self.body = body
        self.json = parsed
        self.record = record
        self.account: FakeAccount = _NO_ACCOUNT
        self.params: dict[str, str] = {}
        self.dropped = False


_NO_ACCOUNT: Final = FakeAccount(token="", user_id="")
_Handler = Callable[["_Routes", _Call], Awaitable[web.StreamResponse]]


class _Routes:
    """The endpoints and the answers they give, over the server's world and script."""

    world: World
    _script: Script
    _n_rate_limited: int
    _n_faults: int
    _stop: asyncio.Future[None] | None
    _sleepers: set[asyncio.Task[Any]]
    echo_cursor_bug: bool

    def _json(
        self, status: int, payload: Any, rid: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        """A JSON response carrying X-Request-Id."""
        hdrs = {"X-Request-Id": rid}
        if headers:
            hdrs.update(headers)
        return _response(_dumps(payload), status, "application/json", hdrs)

    def _error(self, exc: ApiError, rid: str) -> web.Response:
        """The error envelope response for `exc`."""
        payload: dict[str, Any] = {
            "error": exc.message,
            "code": _code(exc.status),
            "requestId": rid,
        }
        if exc.details is not None:
            payload["details"] = exc.details
        return self._json(exc.status, payload, rid, exc.headers)

    def _drop(self, call: _Call) -> web.Response:
        """Close the connection without answering.

        aiohttp then fails to write the returned response, treats that as a client
        disconnect and stays quiet (no traceback, no access log).
        """
        transport = call.request.transport
        if transport is not None:
            transport.close()
        call.dropped = True
        return web.Response(status=500)

    async def _answer(self, rule: Rule, call: _Call) -> web.StreamResponse | None:
        """Carry out a scripted answer; None when the real answer should follow."""
        if rule.counts_as == "rate_limited":
            self._n_rate_limited += 1
        else:
            self._n_faults += 1
        answer = rule.answer
        if answer.delay > 0 and await self._stall(answer.delay):
            return self._drop(call)
        if answer.drop:
            return self._drop(call)
        if answer.status is None:
            return None
        headers = {"X-Request-Id": call.rid, **answer.headers}
        if answer.has_json:
            body = _dumps(answer.json)
        elif answer.body is not None:
            body = answer.body
        else:
            error = answer.error if answer.error is not None else _phrase(answer.status)
            details = None if answer.details is None else dict(answer.details)
            raise ApiError(answer.status, error, details, dict(answer.headers))
        return _response(body, answer.status, answer.content_type, headers)

    async def _stall(self, delay: float) -> bool:
        """Sleep `delay` seconds; returns True if woken early because the server is closing."""
        stop = self._stop
        task = asyncio.current_task()
        if stop is None or task is None:  # pragma: no cover - always set while serving
            await asyncio.sleep(delay)
            return False
        self._sleepers.add(task)
        try:
            await asyncio.wait((stop,), timeout=delay)
        finally:
            self._sleepers.discard(task)
        return stop.done()

    def _resolve(self, method: str, path: str, call: _Call) -> _Handler | None:
        """Find the handler for (method, path); fills `call.params` for templated routes."""
        handler = _STATIC_ROUTES.get((method, path))
        if handler is not None:
            return handler
        for route_method, pattern, route_handler in _DYNAMIC_ROUTES:
            if route_method == method:
                match = pattern.fullmatch(path)
                if match is not None:
                    call.params = match.groupdict()
                    return route_handler
        return None

    # ------------------------------------------------------------------ handlers

    async def _h_send_message(self, call: _Call) -> web.StreamResponse:
        """POST /messages: validate, let the world decide, then any after-commit answer
        (scripted answers before the commit fire earlier, in ``_dispatch``)."""
        obj = self._send_body(call)
        message = self.world.send(call.account, obj["conversationId"], obj["content"])
        if self._script:
            rule = self._script.take("POST", "/messages", after_commit=True)
            if rule is not None:
                scripted = await self._answer(rule, call)
                if scripted is not None:
                    return scripted
        return self._json(201, {"ok": True, "message": message}, call.rid)

    def _send_body(self, call: _Call) -> dict[str, Any]:
        """The validated POST /messages body (raises 400 with zod-like issues)."""
        if not call.body.strip():
            raise ApiError(400, "Request body is required")
        obj = call.json
        if obj is _INVALID_JSON:
            raise ApiError(400, "Request body is not valid JSON")
        if not isinstance(obj, dict):
            wrong = issue(
                "invalid_type",
                [],
                f"Expected object, received {js_type(obj)}",
                expected="object",
                received=js_type(obj),
            )
            raise ApiError(400, "Invalid request body", {"issues": [wrong]})
        issues = string_issues(obj, "conversationId", 1, None)
        issues += string_issues(obj, "content", 1, MAX_CONTENT_UNITS)
        if issues:
            raise ApiError(400, "Invalid request body", {"issues": issues})
        return obj

    async def _h_get_messages(self, call: _Call) -> web.StreamResponse:
        """GET /messages: list conversations, or page one conversation's messages."""
        query = call.request.query
        issues: list[dict[str, Any]] = []
        limit = int_param(query, "limit", 20, 1, 100, issues)
        direction = enum_param(query, "direction", ("older", "newer"), issues)
        bucket_filter = enum_param(query, "filter", ("all", "job", "proposal"), issues)
        unread_raw = enum_param(query, "unreadOnly", ("true", "1", "false", "0"), issues)
        conversation_id = query.get("conversationId")
        if conversation_id is not None and conversation_id == "":
            issues += string_issues(query, "conversationId", 1, None)
        cursor_raw = query.get("cursor")
        cursor: dict[str, Any] | None = None
        if cursor_raw is not None:
            cursor = decode_cursor(cursor_raw)
            expected_mode = "list" if conversation_id is None else "msg"
            if (
                cursor is None
                or cursor.get("m") != expected_mode
                or (expected_mode == "msg" and cursor.get("c") != conversation_id)
                or (expected_mode == "msg" and cursor.get("d") != (direction or "older"))
            ):
                issues.append(issue("custom", ["cursor"], "Invalid cursor"))
                cursor = None
        if issues:
            raise ApiError(400, "Invalid query parameters", {"issues": issues})
        account = call.account
        if not account.can_read_messages():
            raise ApiError(
                403,
                "Token is missing the messages:read scope",
                {"reason": "insufficient_scope", "requiredScope": "messages:read"},
            )
        if conversation_id is None:
            payload = self.world.list_conversations(
                account.user_id, limit, cursor, bucket_filter or "all", unread_raw in ("true", "1")
            )
        else:
            payload = self.world.list_messages(
                account.user_id, conversation_id, limit, cursor, direction or "older"
            )
        if self.echo_cursor_bug and cursor_raw is not None:
            payload["nextCursor"] = cursor_raw
        return self._json(200, payload, call.rid)

    async def _h_get_updates(self, call: _Call) -> web.StreamResponse:
        """GET /updates: the account's event feed, oldest first, numeric cursors."""
        query = call.request.query
        issues: list[dict[str, Any]] = []
        limit = int_param(query, "limit", 50, 1, 200, issues)
        cursor = query.get("cursor")
        if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
            issues.append(issue("custom", ["cursor"], "Invalid cursor"))
        if issues:
            raise ApiError(400, "Invalid query parameters", {"issues": issues})
        page = self.world.updates(call.account, cursor, limit)
        if self.echo_cursor_bug and cursor is not None:
            page["nextCursor"], page["hasMore"] = cursor, True
        return self._json(200, page, call.rid)

    async def _h_proposal_conversation(self, call: _Call) -> web.StreamResponse:
        """POST /proposals/{proposalId}/conversation: idempotent get-or-create."""
        created, body = self.world.proposal_conversation(call.account, call.params["proposalId"])
        return self._json(201 if created else 200, body, call.rid)

    async def _h_auth_me(self, call: _Call) -> web.StreamResponse:
        """GET /auth/me: actor, token (with scopes) and account."""
        return self._json(200, self.world.whoami(call.account), call.rid)

    async def _h_capabilities(self, call: _Call) -> web.StreamResponse:
        """GET /job-drafts/capabilities: the account's feature flags (any valid token)."""
        return self._json(200, self.world.capabilities(call.account), call.rid)


_SEND_PATH: Final = API_PREFIX + "/messages"

# The route table: (method, path under API_PREFIX) -> handler. A path with ``{name}``
# segments becomes a regex; its values land in ``call.params``.
_ROUTES: Final[list[tuple[str, str, _Handler]]] = [
    ("POST", "/messages", _Routes._h_send_message),
    ("GET", "/messages", _Routes._h_get_messages),
    ("GET", "/updates", _Routes._h_get_updates),
    ("POST", "/proposals/{proposalId}/conversation", _Routes._h_proposal_conversation),
    ("GET", "/auth/me", _Routes._h_auth_me),
    ("GET", "/job-drafts/capabilities", _Routes._h_capabilities),
]
_STATIC_ROUTES: dict[tuple[str, str], _Handler] = {}
_DYNAMIC_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = []
for _method, _template, _route_handler in _ROUTES:
    if "{" in _template:
        _regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(API_PREFIX + _template))
        _DYNAMIC_ROUTES.append((_method, re.compile(_regex), _route_handler))
    else:
        _STATIC_ROUTES[(_method, API_PREFIX + _template)] = _route_handler
