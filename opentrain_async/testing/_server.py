"""FakeOpenTrain: an in-process, loopback HTTP fake of the OpenTrain public messaging API.

It speaks real HTTP (aiohttp's low-level server) so the code under test exercises its
whole transport stack, and it follows /work/shared/opentrain-api.md closely: the error
envelope, the order of checks, UTF-16 content lengths, cursors. On top it scripts the
failures a production client must survive (429s with every retry-hint flavour, HTML
502s, connections dropped before or after the commit, stalls) and records what it saw.

It is deliberately independent of the SDK so it cannot mask client bugs, and it is
cheap per request (counters, no uuid4, no logging) because benchmarks drive it hard.
Routes live in one small table (``_ROUTES``); to add an endpoint, write a
``_h_<name>(self, call)`` method and register it there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timezone
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final

import attrs
from aiohttp import web

from ._limits import FixedWindow, RateLimit, TokenBucket, _BucketLimiter, _WindowLimiter
from ._models import (
    DEFAULT_SCOPES,
    FakeAccount,
    FakeConversation,
    Fault,
    RecordedRequest,
)
from ._scripting import NO_JSON, Answer, Rule, Script, fault_rule, parse_route

__all__ = ["API_PREFIX", "DEFAULT_TOKEN", "OTHER_USER", "FakeOpenTrain"]

API_PREFIX: Final = "/api/public/v1"
ADMIN_PREFIX: Final = "/__fake__/"
DEFAULT_TOKEN: Final = "ot_pat_fake_0123456789"  # noqa: S105 - a fake, public test token
CLAIM_URL: Final = "https://app.opentrain.ai/claim"
MAX_CONTENT_UNITS: Final = 10_000
OTHER_USER: Final = "user_other"

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
_JS_TYPES: Final = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _default_now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(timezone.utc)


def _iso(dt: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z (naive datetimes are taken as UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="milliseconds") + "Z"


def _code(status: int) -> str:
    """The envelope code for an HTTP status."""
    return _CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")


def _dumps(payload: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


def _js_type(value: Any) -> str:
    """The name zod uses for a JSON value's type."""
    return _JS_TYPES.get(type(value), "unknown")


def _utf16_len(text: str) -> int:
    """JavaScript string length: UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _issue(code: str, path: list[str | int], message: str, **extra: Any) -> dict[str, Any]:
    """A zod-shaped validation issue."""
    issue: dict[str, Any] = {"code": code, "path": path, "message": message}
    issue.update(extra)
    return issue


def _type_issue(field: str, expected: str, value: Any, missing: bool) -> dict[str, Any]:
    """zod's invalid_type issue for a missing or wrongly typed field."""
    received = "undefined" if missing else _js_type(value)
    message = "Required" if missing else f"Expected {expected}, received {received}"
    return _issue("invalid_type", [field], message, expected=expected, received=received)


def _string_issues(
    obj: Mapping[str, Any], field: str, minimum: int, maximum: int | None
) -> list[dict[str, Any]]:
    """Validate one required string field; lengths in UTF-16 code units."""
    if field not in obj:
        return [_type_issue(field, "string", None, missing=True)]
    value = obj[field]
    if not isinstance(value, str):
        return [_type_issue(field, "string", value, missing=False)]
    length = len(value) if minimum <= len(value) <= MAX_CONTENT_UNITS // 2 else _utf16_len(value)
    if length < minimum:
        return [
            _issue(
                "too_small",
                [field],
                f"String must contain at least {minimum} character(s)",
                minimum=minimum,
                type="string",
                inclusive=True,
                exact=False,
            )
        ]
    if maximum is not None and length > maximum:
        return [
            _issue(
                "too_big",
                [field],
                f"String must contain at most {maximum} character(s)",
                maximum=maximum,
                type="string",
                inclusive=True,
                exact=False,
            )
        ]
    return []


def _encode_cursor(payload: dict[str, Any]) -> str:
    """An opaque cursor string."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any] | None:
    """The cursor's payload, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


_FEED_SCOPES: Final = frozenset({"proposals:read", "messages:read", "payments:read"})


def _event_scope(event_type: str) -> str | None:
    """The read scope an event type needs in the feed (None: unknown type, always shown)."""
    prefix = event_type.split(".", 1)[0]
    if prefix == "message":
        return "messages:read"
    if prefix == "proposal":
        return "proposals:read"
    if prefix in ("contract", "milestone", "payment", "approval"):
        return "payments:read"
    return None


@attrs.define
class _FakeProposal:
    """A proposal the default account can open (or not) a pre-hire thread for."""

    id: str
    job_id: str
    ready: bool
    employer: str
    candidate: str
    conversation_id: str | None = None


class _ApiError(Exception):
    """Raised inside handlers to answer with the error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers


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
_Handler = Callable[["FakeOpenTrain", _Call], Awaitable[web.StreamResponse]]


class FakeOpenTrain:
    """A fake OpenTrain API server on a loopback port, with scripted failures and recording."""

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
        self._now = now
        self._host = host
        self._port = port
        self._record = record_requests
        self.latency = latency
        """Seconds each API request takes before it is processed (0: one event-loop turn)."""
        self._random = random.Random(seed)
        self._origin = clock()
        bits = self._random.getrandbits(64)
        # uuid-shaped request ids: a seeded random prefix plus a counter (no uuid4 per request)
        self._rid_prefix = (
            "-".join(
                (f"{bits >> 32:08x}", f"{bits >> 16 & 0xFFFF:04x}", f"4{bits >> 4 & 0xFFF:03x}", "")
            )
            + f"8{bits & 0xFFF:03x}-"
        )
        self._rid_counter = 0

        self._accounts: dict[str, FakeAccount] = {}
        self._user_counter = 0
        self._conversations: dict[str, FakeConversation] = {}
        self._conv_counter = 0
        self._msg_counter = 0
        self._seq = 0
        self._blocked: list[tuple[str, str]] = []
        self._script = Script(self._random)
        self._rate_limit: TokenBucket | FixedWindow | None = None
        self._limiters: dict[str, _BucketLimiter | _WindowLimiter] = {}

        self._requests: list[RecordedRequest] = []
        self._sends: list[RecordedRequest] = []
        self._in_flight = 0
        self._content_counts: dict[tuple[str, str], int] = {}
        self._stats_zero()

        self._runner: web.ServerRunner | None = None
        self._base_url: str | None = None
        self._stop: asyncio.Future[None] | None = None
        self._sleepers: set[asyncio.Task[Any]] = set()

        self._events: dict[str, list[dict[str, Any]]] = {}
        self._event_counter = 0
        self._proposals: dict[str, _FakeProposal] = {}
        self.info: dict[str, Any] = {}
        """What ``GET /__fake__/info`` answers (set by ``python -m opentrain_async.testing``)."""
        self.echo_cursor_bug = False
        """Simulate a buggy server: every page asked for with a cursor echoes that cursor."""

        self._default = self.add_token(token)

    def __repr__(self) -> str:
        """Where it serves and what it holds; never a token."""
        where = self._base_url or "not started"
        return (
            f"FakeOpenTrain({where}, accounts={len(self._accounts)}, "
            f"conversations={len(self._conversations)}, requests={len(self._requests)})"
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
        return self._default.token

    @property
    def user_id(self) -> str:
        """The user id behind the default token."""
        return self._default.user_id

    # ------------------------------------------------------------------ state setup

    def add_token(
        self,
        token: str,
        *,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        claimed: bool = True,
        messaging_writes: bool = True,
        user_id: str | None = None,
    ) -> FakeAccount:
        """Register a token; each token is its own viewer user. Returns its mutable account."""
        if token in self._accounts:
            raise ValueError(f"token already registered (for {self._accounts[token].user_id})")
        if user_id is None:
            self._user_counter += 1
            user_id = f"user_{self._user_counter:04d}"
        account = FakeAccount(
            token=token,
            user_id=user_id,
            scopes=frozenset(scopes),
            claimed=claimed,
            messaging_writes=messaging_writes,
        )
        self._accounts[token] = account
        return account

    def account(self, token: str) -> FakeAccount:
        """The mutable account behind `token` (KeyError if unknown)."""
        return self._lookup(token)

    def _lookup(self, token: str | None) -> FakeAccount:
        """The account behind `token` (the default's when None); KeyError never shows it."""
        if token is None:
            return self._default
        account = self._accounts.get(token)
        if account is None:
            raise KeyError("no account has this token") from None
        return account

    def add_conversation(
        self,
        conversation_id: str | None = None,
        *,
        participant: bool = True,
        send_block: str | None = None,
        readable: bool = True,
        job_id: str | None = None,
        proposal_id: str | None = None,
        bucket: str = "job",
        members: Iterable[str | FakeAccount] = (),
    ) -> str:
        """Create a conversation and return its id.

        `participant` says whether the default token's user is in it; `members` adds more
        user ids or accounts. `send_block` makes sends answer 409 with that reason.
        """
        if conversation_id is None:
            while True:
                self._conv_counter += 1
                conversation_id = f"conv_{self._conv_counter:04d}"
                if conversation_id not in self._conversations:
                    break
        elif conversation_id in self._conversations:
            raise ValueError(f"conversation already exists: {conversation_id!r}")
        participants = {OTHER_USER}
        if participant:
            participants.add(self._default.user_id)
        for member in members:
            participants.add(member.user_id if isinstance(member, FakeAccount) else member)
        created = _iso(self._now())
        self._seq += 1
        self._conversations[conversation_id] = FakeConversation(
            id=conversation_id,
            participants=participants,
            created_at=created,
            updated_at=created,
            seq=self._seq,
            send_block=send_block,
            readable=readable,
            job_id=job_id,
            proposal_id=proposal_id,
            bucket=bucket,
        )
        return conversation_id

    def conversation(self, conversation_id: str) -> FakeConversation:
        """The mutable conversation record (KeyError if unknown)."""
        return self._conversations[conversation_id]

    def add_incoming_message(
        self, conversation_id: str, content: str, *, sender_user_id: str = OTHER_USER
    ) -> dict[str, Any]:
        """Store a message from someone else; returns it as the default viewer sees it."""
        conv = self._conversations[conversation_id]
        conv.participants.add(sender_user_id)
        message = self._store(conv, sender_user_id, content)
        self._announce_message(conv, message)
        return {**message, "isFromViewer": sender_user_id == self._default.user_id}

    def block_content(self, substring: str, *, policy: str = "profanity") -> None:
        """Sends whose content contains `substring` answer 403 message_policy_blocked."""
        self._blocked.append((substring, policy))

    # ------------------------------------------------------------------ read side

    def add_event(
        self,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        resource_id: str | None = None,
        job_id: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Append an event (any type, known or not) to one account's /updates feed.

        The feed is the default token's unless `token` names another. Returns the record.
        """
        account = self._lookup(token)
        return self._append_event(account.user_id, type, dict(data or {}), resource_id, job_id)

    def events(self, token: str | None = None) -> list[dict[str, Any]]:
        """The /updates feed of `token` (default token when None), oldest first."""
        account = self._lookup(token)
        return list(self._events.get(account.user_id, ()))

    def add_proposal(
        self,
        proposal_id: str,
        *,
        job_id: str = "job_0001",
        ready: bool = True,
        owner: bool = True,
        candidate_user_id: str = OTHER_USER,
    ) -> None:
        """Register a proposal for POST /proposals/{id}/conversation.

        `owner`: the default token's user owns the job (else it is the candidate, and
        the employer is someone else). `ready=False` answers 409
        proposal_not_ready_for_messaging.
        """
        if proposal_id in self._proposals:
            raise ValueError(f"proposal already exists: {proposal_id!r}")
        employer = self._default.user_id if owner else OTHER_USER
        candidate = candidate_user_id if owner else self._default.user_id
        self._proposals[proposal_id] = _FakeProposal(
            id=proposal_id, job_id=job_id, ready=ready, employer=employer, candidate=candidate
        )

    def _append_event(
        self,
        user_id: str,
        type: str,
        data: dict[str, Any],
        resource_id: str | None,
        job_id: str | None,
    ) -> dict[str, Any]:
        self._event_counter += 1
        event = {
            "id": str(self._event_counter),
            "type": type,
            "apiVersion": "v1",
            "createdAt": _iso(self._now()),
            "resourceId": resource_id,
            "jobId": job_id,
            "data": data,
        }
        self._events.setdefault(user_id, []).append(event)
        return event

    def _announce_to_accounts(self, conv: FakeConversation, message: dict[str, Any]) -> None:
        """message.received for the other participants that have a token (sent via the API).

        Participants without an account have no feed anyone could read, so they get no
        events: a benchmark's million sends cost no memory here.
        """
        sender = message["senderUserId"]
        for account in self._accounts.values():
            user_id = account.user_id
            if user_id != sender and user_id in conv.participants:
                self._append_event(
                    user_id,
                    "message.received",
                    {"conversationId": conv.id, "messageId": message["id"]},
                    message["id"],
                    conv.job_id,
                )

    def _announce_message(self, conv: FakeConversation, message: dict[str, Any]) -> None:
        """message.received for every participant but the sender."""
        for user_id in conv.participants:
            if user_id != message["senderUserId"]:
                self._append_event(
                    user_id,
                    "message.received",
                    {"conversationId": conv.id, "messageId": message["id"]},
                    message["id"],
                    conv.job_id,
                )

    async def _h_get_updates(self, call: _Call) -> web.StreamResponse:
        """GET /updates: the account's event feed, oldest first, numeric cursors."""
        query = call.request.query
        issues: list[dict[str, Any]] = []
        limit = _int_param(query, "limit", 50, 1, 200, issues)
        cursor = query.get("cursor")
        if cursor is not None and not (cursor.isascii() and cursor.isdigit()):
            issues.append(_issue("custom", ["cursor"], "Invalid cursor"))
        if issues:
            raise _ApiError(400, "Invalid query parameters", {"issues": issues})
        account = call.account
        readable = {s.replace(":write", ":read") for s in account.scopes}
        if not readable & _FEED_SCOPES:
            raise _ApiError(
                403,
                "Token needs one of proposals:read, messages:read, payments:read",
                {"reason": "insufficient_scope"},
            )
        start = 0 if cursor is None else int(cursor)
        visible = [
            e
            for e in self._events.get(account.user_id, ())
            if int(e["id"]) >= start and _event_scope(e["type"]) in readable | {None}
        ]
        page = visible[:limit]
        has_more = len(visible) > limit
        next_cursor = str(int(page[-1]["id"]) + 1) if page else cursor
        if self.echo_cursor_bug and cursor is not None:
            next_cursor, has_more = cursor, True
        return self._json(
            200, {"events": page, "nextCursor": next_cursor, "hasMore": has_more}, call.rid
        )

    async def _h_proposal_conversation(self, call: _Call) -> web.StreamResponse:
        """POST /proposals/{proposalId}/conversation: idempotent get-or-create."""
        account = call.account
        self._check_write_access(account)
        proposal = self._proposals.get(call.params["proposalId"])
        if proposal is None:
            raise _ApiError(404, "Proposal not found")
        if account.user_id == proposal.candidate:
            raise _ApiError(
                403,
                "The employer must send the first message",
                {"reason": "employer_first_message_required"},
            )
        if account.user_id != proposal.employer:
            raise _ApiError(403, "This proposal belongs to another account's job")
        if not proposal.ready:
            raise _ApiError(
                409,
                "This proposal is not ready for messaging",
                {"reason": "proposal_not_ready_for_messaging"},
            )
        created = proposal.conversation_id is None
        if proposal.conversation_id is None:
            proposal.conversation_id = self.add_conversation(
                job_id=proposal.job_id,
                proposal_id=proposal.id,
                bucket="proposal",
                participant=False,
                members=(proposal.employer, proposal.candidate),
            )
        return self._json(
            201 if created else 200,
            {
                "ok": True,
                "conversationId": proposal.conversation_id,
                "proposalId": proposal.id,
                "jobId": proposal.job_id,
                "created": created,
            },
            call.rid,
        )

    def _check_write_access(self, account: FakeAccount) -> None:
        """The write gates shared by sends and proposal conversations."""
        if "messages:write" not in account.scopes:
            raise _ApiError(
                403,
                "Token is missing the messages:write scope",
                {"reason": "insufficient_scope", "requiredScope": "messages:write"},
            )
        if not account.messaging_writes:
            raise _ApiError(
                403,
                "Messaging writes are not enabled for this account",
                {"reason": "feature_disabled", "feature": "public_api_messaging_writes"},
            )
        if not account.claimed:
            raise _ApiError(
                403,
                "Claim this account before sending messages",
                {"reason": "account_claim_required", "claimUrl": CLAIM_URL},
            )

    async def _h_auth_me(self, call: _Call) -> web.StreamResponse:
        """GET /auth/me: actor, token (with scopes) and account.

        ``account.claimed`` / ``account.claimUrl`` are not in the documented shape; the
        fake sends them so preflight's claim check can be exercised.
        """
        account = call.account
        n = account.user_id.rsplit("_", 1)[-1]
        body = {
            "actor": {
                "userId": account.user_id,
                "email": f"{account.user_id}@example.test",
                "firstName": "Fake",
                "lastName": f"User {n}",
                "fullName": f"Fake User {n}",
                "userType": "EMPLOYER",
            },
            "token": {
                "id": f"tok_{n}",
                "label": "fake token",
                "scopes": sorted(account.scopes),
                "ownerOrganizationId": f"org_{n}",
            },
            "account": {
                "kind": "organization" if account.claimed else "agent",
                "organizationId": f"org_{n}",
                "ownerUserId": account.user_id,
                "memberRole": "OWNER",
                "claimed": account.claimed,
                "claimUrl": None if account.claimed else CLAIM_URL,
            },
        }
        return self._json(200, body, call.rid)

    async def _h_capabilities(self, call: _Call) -> web.StreamResponse:
        """GET /job-drafts/capabilities: the account's feature flags (any valid token)."""
        account = call.account
        body = {
            "capabilities": {"messagingWrites": account.messaging_writes, "jobDrafts": True},
            "enabled": True,
        }
        return self._json(200, body, call.rid)

    # ------------------------------------------------------------------ scripting

    def script(
        self,
        route: str,
        *,
        status: int | None = None,
        json: Any = NO_JSON,
        body: str | bytes | None = None,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
        drop: bool = False,
        delay: float = 0.0,
        times: int | None = 1,
        probability: float | None = None,
        after_commit: bool = False,
    ) -> None:
        """Answer the next `times` requests to `route` (``"GET /updates"``) this way.

        The answer is `status` (200 if only a body is given) with the JSON value `json`,
        else the raw `body`, else the error envelope (`error`, `details`); `drop` closes
        the connection unanswered; `delay` stalls first; with neither a status nor a body
        the real answer follows the stall.
        `times=None` scripts every matching request (each with `probability`, if given).
        `after_commit=True` (POST /messages only) stores the message first, as when a
        proxy fails after the server committed. Rules apply in the order scripted, before
        authentication, to any path under the API prefix, served or not.
        """
        method, path = parse_route(route)
        raw = body.encode() if isinstance(body, str) else body
        if status is None and (json is not NO_JSON or raw is not None):
            status = 200
        answer = Answer(
            status=status,
            json=json,
            body=raw,
            content_type=content_type,
            headers=dict(headers or {}),
            error=error,
            details=None if details is None else dict(details),
            drop=drop,
            delay=delay,
        )
        counts_as = "rate_limited" if status == 429 else "faults"
        self._script.add(Rule(method, path, answer, times, probability, after_commit, counts_as))

    def throttle_next(
        self,
        n: int,
        *,
        retry_after: float = 1.0,
        in_body: bool = True,
        header: str | None = None,
    ) -> None:
        """The next `n` sends answer 429 (hint in body and/or a Retry-After header)."""
        details: dict[str, Any] = {"reason": "rate_limited"}
        if in_body:
            details["retryAfterSeconds"] = retry_after
        headers = {"Retry-After": header} if header is not None else {}
        self.script(
            "POST /messages",
            status=429,
            error="Rate limit exceeded",
            details=details,
            headers=headers,
            times=n,
        )

    def fail_next(
        self,
        n: int,
        *,
        status: int = 500,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """The next `n` sends answer `status` before committing (raw `body`, or the envelope)."""
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
        self.script(
            "POST /messages",
            status=status,
            body=body,
            content_type=content_type,
            error=message,
            times=n,
        )

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Install (or with None remove) the per-account POST /messages limit; state restarts.

        FixedWindow windows are aligned to the clock's value when this server was created.
        """
        self._rate_limit = limit
        self._limiters.clear()

    def inject_fault(
        self,
        fault: Fault,
        count: int | None = None,
        probability: float | None = None,
        *,
        delay: float = 60.0,
    ) -> None:
        """Inject a transport fault on sends: the next `count`, each with `probability`, or all."""
        self._script.add(fault_rule(Fault(fault), count, probability, delay))

    def clear_faults(self) -> None:
        """Remove every scripted answer: faults, fail_next/throttle_next and script() rules."""
        self._script.clear()

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

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """Stored messages in creation order, API shape, as the default viewer sees them."""
        uid = self._default.user_id
        return [
            {**m, "isFromViewer": m["senderUserId"] == uid}
            for m in self._conversations[conversation_id].messages
        ]

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
            "distinct": len(self._content_counts),
            "requests": self._n_requests,
            "sends": self._n_sends,
            "committed": self._n_committed,
            "rate_limited": self._n_rate_limited,
            "faults": self._n_faults,
            "duplicates": self._n_duplicates,
            "peak_in_flight": self._peak_in_flight,
        }

    def reset_stats(self) -> None:
        """Zero the counters (duplicate tracking restarts too); recorded requests are kept."""
        self._stats_zero()
        self._content_counts.clear()

    def _stats_zero(self) -> None:
        """Set every counter to zero (peak to the current concurrency)."""
        self._n_requests = 0
        self._n_sends = 0
        self._n_committed = 0
        self._n_rate_limited = 0
        self._n_faults = 0
        self._n_duplicates = 0
        self._peak_in_flight = self._in_flight

    # ------------------------------------------------------------------ plumbing

    def _json(
        self, status: int, payload: Any, rid: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        """A JSON response carrying X-Request-Id."""
        hdrs = {"X-Request-Id": rid}
        if headers:
            hdrs.update(headers)
        return web.Response(
            body=_dumps(payload), status=status, content_type="application/json", headers=hdrs
        )

    def _error(self, exc: _ApiError, rid: str) -> web.Response:
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
            error = answer.error
            if error is None:
                try:
                    error = HTTPStatus(answer.status).phrase
                except ValueError:
                    error = "Error"
            details = None if answer.details is None else dict(answer.details)
            raise _ApiError(answer.status, error, details, dict(answer.headers))
        return web.Response(
            body=body, status=answer.status, content_type=answer.content_type, headers=headers
        )

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

    def _store(self, conv: FakeConversation, sender: str, content: str) -> dict[str, Any]:
        """Append a message to `conv` and return the stored dict."""
        self._msg_counter += 1
        ts = _iso(self._now())
        message = {
            "id": f"msg_{self._msg_counter:06d}",
            "createdAt": ts,
            "updatedAt": ts,
            "conversationId": conv.id,
            "jobId": conv.job_id,
            "senderUserId": sender,
            "isFromViewer": True,
            "content": content,
            "messageType": None,
            "system": False,
            "hasUnreadFlag": False,
            "attachmentCount": 0,
            "hasAudio": False,
            "editedAt": None,
            "reactionCount": 0,
        }
        conv.messages.append(message)
        self._seq += 1
        conv.seq = self._seq
        conv.updated_at = ts
        return message

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
        headers = request.headers
        auth = headers.get("Authorization")
        token = None
        if auth is not None:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                token = value.strip()
        record: RecordedRequest | None = None
        if self._record:
            record = RecordedRequest(
                method=method,
                path=path,
                raw_path=request.raw_path.partition("?")[0],
                query=dict(request.query),
                headers={
                    k: ("Bearer ***" if k.lower() == "authorization" else v)
                    for k, v in headers.items()
                },
                token=token,
                received_at=self._clock(),
                request_id=rid,
            )
            self._requests.append(record)
            if is_send:
                self._sends.append(record)
        call: _Call | None = None
        try:
            # Yield at least one loop turn, like a real server doing I/O: requests that
            # arrive together are then in flight together, so peak_in_flight means something.
            await asyncio.sleep(self.latency)
            try:
                body = await request.read() if request.body_exists else b""
            except web.HTTPException as exc:
                raise _ApiError(400, f"Unreadable request body: {exc.reason}") from None
            except ConnectionError:
                # The client went away before its body was read: nothing to answer.
                if record is not None:
                    record.status = None
                return web.Response(status=500)
            parsed: Any = None
            if body:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = _INVALID_JSON
            call = _Call(request, rid, body, parsed, record)
            if record is not None:
                record.raw_body = body
                record.json = None if parsed is _INVALID_JSON else parsed
                if isinstance(parsed, dict):
                    cid = parsed.get("conversationId")
                    record.conversation_id = cid if isinstance(cid, str) else None
                elif "conversationId" in record.query:
                    record.conversation_id = record.query["conversationId"]
            scripted: web.StreamResponse | None = None
            if self._script:
                rule = self._script.take(method, path.removeprefix(API_PREFIX), after_commit=False)
                if rule is not None:
                    scripted = await self._answer(rule, call)
            response = scripted or await self._route(method, path, token, call)
        except _ApiError as exc:
            response = self._error(exc, rid)
        finally:
            self._in_flight -= 1
        if record is not None:
            record.status = None if call is not None and call.dropped else response.status
        return response

    async def _route(
        self, method: str, path: str, token: str | None, call: _Call
    ) -> web.StreamResponse:
        """Authenticate and run the route's handler."""
        handler = self._resolve(method, path, call)
        if handler is None:
            raise _ApiError(404, f"No route for {method} {path}")
        account = self._accounts.get(token) if token is not None else None
        if account is None:
            raise _ApiError(401, "Missing bearer token" if token is None else "Invalid API token")
        call.account = account
        return await handler(self, call)

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
        return self._error(_ApiError(404, "Unknown admin endpoint"), "admin")

    async def _admin_inject(self, request: web.BaseRequest) -> web.Response:
        """POST /__fake__/inject: store a message from someone else, announce it."""
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(_ApiError(400, "Body must be a JSON object"), "admin")
        issues = _string_issues(body, "conversationId", 1, None)
        issues += _string_issues(body, "content", 1, MAX_CONTENT_UNITS)
        sender = body.get("senderUserId", OTHER_USER)
        if not isinstance(sender, str) or not sender:
            issues.append(_type_issue("senderUserId", "string", sender, missing=False))
        if issues:
            return self._error(_ApiError(400, "Invalid inject body", {"issues": issues}), "admin")
        if body["conversationId"] not in self._conversations:
            return self._error(_ApiError(404, "Conversation not found"), "admin")
        message = self.add_incoming_message(
            body["conversationId"], body["content"], sender_user_id=sender
        )
        return self._json(201, {"ok": True, "message": message}, "admin")

    # ------------------------------------------------------------------ handlers

    async def _h_send_message(self, call: _Call) -> web.StreamResponse:
        """POST /messages, with the spec's order of checks (scripted answers fire earlier,
        in ``_dispatch``, or after the commit here)."""
        obj = self._send_body(call)
        conversation_id: str = obj["conversationId"]
        content: str = obj["content"]
        account = call.account
        self._check_write_access(account)
        conv = self._conversations.get(conversation_id)
        if conv is None:
            raise _ApiError(404, "Conversation not found")
        if account.user_id not in conv.participants:
            raise _ApiError(
                403, "You are not a participant in this conversation", {"reason": "not_participant"}
            )
        if conv.send_block is not None:
            raise _ApiError(
                409, "Sending is blocked in this conversation", {"reason": conv.send_block}
            )
        for substring, policy in self._blocked:
            if substring in content:
                raise _ApiError(
                    403,
                    "Message blocked by content policy",
                    {"reason": "message_policy_blocked", "policy": policy},
                )
        limit = self._rate_limit
        if limit is not None:
            limiter = self._limiters.get(account.user_id)
            now = self._clock()
            if limiter is None:
                limiter = limit._limiter(self._origin, now)
                self._limiters[account.user_id] = limiter
            wait = limiter.acquire(now)
            if wait is not None:
                self._n_rate_limited += 1
                raise _ApiError(
                    429,
                    "Rate limit exceeded",
                    {"reason": "rate_limited", "retryAfterSeconds": wait},
                    {"Retry-After": str(max(1, math.ceil(wait)))}
                    if limit.retry_after_header
                    else None,
                )

        message = self._store(conv, account.user_id, content)
        self._announce_to_accounts(conv, message)
        self._n_committed += 1
        key = (conversation_id, content)
        seen = self._content_counts.get(key, 0) + 1
        self._content_counts[key] = seen
        if seen == 2:
            self._n_duplicates += 1

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
            raise _ApiError(400, "Request body is required")
        obj = call.json
        if obj is _INVALID_JSON:
            raise _ApiError(400, "Request body is not valid JSON")
        if not isinstance(obj, dict):
            issue = _issue(
                "invalid_type",
                [],
                f"Expected object, received {_js_type(obj)}",
                expected="object",
                received=_js_type(obj),
            )
            raise _ApiError(400, "Invalid request body", {"issues": [issue]})
        issues = _string_issues(obj, "conversationId", 1, None)
        issues += _string_issues(obj, "content", 1, MAX_CONTENT_UNITS)
        if issues:
            raise _ApiError(400, "Invalid request body", {"issues": issues})
        return obj

    async def _h_get_messages(self, call: _Call) -> web.StreamResponse:
        """GET /messages: list conversations, or page one conversation's messages."""
        query = call.request.query
        issues: list[dict[str, Any]] = []
        limit = _int_param(query, "limit", 20, 1, 100, issues)
        direction = _enum_param(query, "direction", ("older", "newer"), issues)
        bucket_filter = _enum_param(query, "filter", ("all", "job", "proposal"), issues)
        unread_raw = _enum_param(query, "unreadOnly", ("true", "1", "false", "0"), issues)
        conversation_id = query.get("conversationId")
        if conversation_id is not None and conversation_id == "":
            issues += _string_issues(query, "conversationId", 1, None)
        cursor_raw = query.get("cursor")
        cursor: dict[str, Any] | None = None
        if cursor_raw is not None:
            cursor = _decode_cursor(cursor_raw)
            expected_mode = "list" if conversation_id is None else "msg"
            if (
                cursor is None
                or cursor.get("m") != expected_mode
                or (expected_mode == "msg" and cursor.get("c") != conversation_id)
                or (expected_mode == "msg" and cursor.get("d") != (direction or "older"))
            ):
                issues.append(_issue("custom", ["cursor"], "Invalid cursor"))
                cursor = None
        if issues:
            raise _ApiError(400, "Invalid query parameters", {"issues": issues})
        account = call.account
        if not account.can_read_messages():
            raise _ApiError(
                403,
                "Token is missing the messages:read scope",
                {"reason": "insufficient_scope", "requiredScope": "messages:read"},
            )
        if conversation_id is None:
            payload = self._list_conversations(
                account.user_id, limit, cursor, bucket_filter or "all", unread_raw in ("true", "1")
            )
        else:
            payload = self._list_messages(
                account.user_id, conversation_id, limit, cursor, direction or "older"
            )
        if self.echo_cursor_bug and cursor_raw is not None:
            payload["nextCursor"] = cursor_raw
        return self._json(200, payload, call.rid)

    def _list_messages(
        self,
        uid: str,
        conversation_id: str,
        limit: int,
        cursor: dict[str, Any] | None,
        direction: str,
    ) -> dict[str, Any]:
        """Message mode: a page of one conversation's messages."""
        conv = self._conversations.get(conversation_id)
        if conv is None:
            raise _ApiError(404, "Conversation not found")
        if uid not in conv.participants or not conv.readable:
            raise _ApiError(
                403, "You are not a participant in this conversation", {"reason": "not_participant"}
            )
        messages = conv.messages
        total = len(messages)
        position = cursor.get("p") if cursor is not None else None
        if position is not None and (type(position) is not int or not 0 <= position <= total):
            raise _ApiError(
                400,
                "Invalid query parameters",
                {"issues": [_issue("custom", ["cursor"], "Invalid cursor")]},
            )
        next_position: int | None
        if direction == "older":
            end = total if position is None else position
            start = max(0, end - limit)
            page = messages[start:end][::-1]
            next_position = start if start > 0 else None
        else:
            start = 0 if position is None else position
            end = min(total, start + limit)
            page = messages[start:end]
            next_position = end if end < total else None
        next_cursor = (
            None
            if next_position is None
            else _encode_cursor(
                {"m": "msg", "c": conversation_id, "d": direction, "p": next_position}
            )
        )
        return {
            "messages": [{**m, "isFromViewer": m["senderUserId"] == uid} for m in page],
            "nextCursor": next_cursor,
        }

    def _list_conversations(
        self,
        uid: str,
        limit: int,
        cursor: dict[str, Any] | None,
        bucket_filter: str,
        unread_only: bool,
    ) -> dict[str, Any]:
        """List mode: the caller's conversations, most recently updated first."""
        after: tuple[int, str] | None = None
        if cursor is not None:
            seq, cid = cursor.get("s"), cursor.get("i")
            if type(seq) is not int or not isinstance(cid, str):
                raise _ApiError(
                    400,
                    "Invalid query parameters",
                    {"issues": [_issue("custom", ["cursor"], "Invalid cursor")]},
                )
            after = (seq, cid)
        rows: list[tuple[FakeConversation, int]] = []
        candidates = sorted(
            (
                c
                for c in self._conversations.values()
                if uid in c.participants
                and c.readable
                and (bucket_filter == "all" or c.bucket == bucket_filter)
                and (after is None or (c.seq, c.id) < after)
            ),
            key=lambda c: (c.seq, c.id),
            reverse=True,
        )
        more = False
        for conv in candidates:
            unread = conv.unread_for(uid)
            if unread_only and unread == 0:
                continue
            if len(rows) == limit:
                more = True
                break
            rows.append((conv, unread))
        items = []
        for conv, unread in rows:
            last = conv.messages[-1] if conv.messages else None
            items.append(
                {
                    "id": conv.id,
                    "type": "DIRECT_MESSAGE",
                    "bucket": conv.bucket,
                    "jobId": conv.job_id,
                    "proposalId": conv.proposal_id,
                    "channelName": None,
                    "updatedAt": conv.updated_at,
                    "lastMessage": None
                    if last is None
                    else {
                        "id": last["id"],
                        "content": last["content"],
                        "senderUserId": last["senderUserId"],
                        "isFromViewer": last["senderUserId"] == uid,
                        "createdAt": last["createdAt"],
                    },
                    "unreadCount": unread,
                    "needsReplyCount": unread,
                }
            )
        next_cursor = None
        if more and rows:
            tail = rows[-1][0]
            next_cursor = _encode_cursor({"m": "list", "s": tail.seq, "i": tail.id})
        return {"conversations": items, "nextCursor": next_cursor}


def _int_param(
    query: Mapping[str, str],
    name: str,
    default: int,
    minimum: int,
    maximum: int,
    issues: list[dict[str, Any]],
) -> int:
    """A coerced integer query parameter (zod ``z.coerce.number().int().min().max()``)."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw) if raw.strip() else math.nan
    except ValueError:
        value = math.nan
    if math.isnan(value):
        issues.append(
            _issue(
                "invalid_type",
                [name],
                "Expected number, received nan",
                expected="number",
                received="nan",
            )
        )
        return default
    if not value.is_integer():
        issues.append(
            _issue(
                "invalid_type",
                [name],
                "Expected integer, received float",
                expected="integer",
                received="float",
            )
        )
        return default
    if value < minimum:
        issues.append(
            _issue(
                "too_small",
                [name],
                f"Number must be greater than or equal to {minimum}",
                minimum=minimum,
                type="number",
                inclusive=True,
                exact=False,
            )
        )
        return default
    if value > maximum:
        issues.append(
            _issue(
                "too_big",
                [name],
                f"Number must be less than or equal to {maximum}",
                maximum=maximum,
                type="number",
                inclusive=True,
                exact=False,
            )
        )
        return default
    return int(value)


def _enum_param(
    query: Mapping[str, str], name: str, options: tuple[str, ...], issues: list[dict[str, Any]]
) -> str | None:
    """An enum query parameter, or None when absent."""
    raw = query.get(name)
    if raw is None or raw in options:
        return raw
    expected = " | ".join(f"'{o}'" for o in options)
    issues.append(
        _issue(
            "invalid_enum_value",
            [name],
            f"Invalid enum value. Expected {expected}, received '{raw}'",
            options=list(options),
            received=raw,
        )
    )
    return None


_SEND_PATH: Final = API_PREFIX + "/messages"

# The route table: (method, path under API_PREFIX) -> handler. A path with ``{name}``
# segments becomes a regex; its values land in ``call.params``.
_ROUTES: Final[list[tuple[str, str, _Handler]]] = [
    ("POST", "/messages", FakeOpenTrain._h_send_message),
    ("GET", "/messages", FakeOpenTrain._h_get_messages),
    ("GET", "/updates", FakeOpenTrain._h_get_updates),
    ("POST", "/proposals/{proposalId}/conversation", FakeOpenTrain._h_proposal_conversation),
    ("GET", "/auth/me", FakeOpenTrain._h_auth_me),
    ("GET", "/job-drafts/capabilities", FakeOpenTrain._h_capabilities),
]
_STATIC_ROUTES: dict[tuple[str, str], _Handler] = {}
_DYNAMIC_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = []
for _method, _template, _route_handler in _ROUTES:
    if "{" in _template:
        _regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(API_PREFIX + _template))
        _DYNAMIC_ROUTES.append((_method, re.compile(_regex), _route_handler))
    else:
        _STATIC_ROUTES[(_method, API_PREFIX + _template)] = _route_handler
