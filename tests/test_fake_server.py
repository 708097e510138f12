"""Tests for opentrain_async.testing.FakeOpenTrain, over real loopback HTTP with plain aiohttp."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import (
    ApiError,
    FakeOpenTrain,
    FakeTime,
    Fault,
    FixedWindow,
    RecordedRequest,
    TokenBucket,
    World,
)
from opentrain_async.testing._world import FEED_RETENTION, decode_cursor
from opentrain_async.testing._zod import enum_param, int_param, string_issues, utf16_len

from .cli_helpers import run_main

pytest_plugins = ["opentrain_async.testing.pytest_plugin"]

API = "/api/public/v1"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "<the server's default token>"
FIXED_NOW = datetime(2026, 6, 12, 9, 15, 0, 123456, tzinfo=timezone.utc)
MESSAGE_KEYS = {
    "id",
    "createdAt",
    "updatedAt",
    "conversationId",
    "jobId",
    "senderUserId",
    "isFromViewer",
    "content",
    "messageType",
    "system",
    "hasUnreadFlag",
    "attachmentCount",
    "hasAudio",
    "editedAt",
    "reactionCount",
}


class Reply:
    """A decoded HTTP answer."""

    def __init__(self, status: int, headers: Any, text: str, payload: Any) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.json = payload


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
async def server(clock: FakeTime) -> AsyncIterator[FakeOpenTrain]:
    async with FakeOpenTrain(clock=clock.clock, now=lambda: FIXED_NOW) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def conv(server: FakeOpenTrain) -> str:
    return server.add_conversation()


async def call(
    http: aiohttp.ClientSession,
    server: FakeOpenTrain,
    method: str,
    path: str,
    *,
    token: str | None = DEFAULT,
    json: Any = None,
    data: bytes | None = None,
    params: dict[str, str] | None = None,
) -> Reply:
    headers = {}
    if token == DEFAULT:
        token = server.token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if data is not None:
        headers["Content-Type"] = "application/json"
    async with http.request(
        method,
        server.base_url + API + path,
        headers=headers,
        json=json,
        data=data,
        params=params,
    ) as resp:
        text = await resp.text()
        payload = await resp.json() if resp.content_type == "application/json" else None
        return Reply(resp.status, resp.headers, text, payload)


async def send(
    http: aiohttp.ClientSession,
    server: FakeOpenTrain,
    conversation_id: str,
    content: str,
    *,
    token: str | None = DEFAULT,
) -> Reply:
    return await call(
        http,
        server,
        "POST",
        "/messages",
        token=token,
        json={"conversationId": conversation_id, "content": content},
    )


def assert_envelope(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.text
    body = reply.json
    assert isinstance(body, dict)
    assert body["code"] == code
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["requestId"] == reply.headers["X-Request-Id"]
    details: dict[str, Any] = body.get("details", {})
    return details


# ---------------------------------------------------------------- POST /messages


async def test_send_returns_201_with_full_message_shape(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """A valid send answers 201 with the spec's message shape and stores it."""
    conv = server.add_conversation(job_id="job_1")
    reply = await send(http, server, conv, "hello")
    assert reply.status == 201
    assert reply.json["ok"] is True
    message = reply.json["message"]
    assert set(message) == MESSAGE_KEYS
    assert message["conversationId"] == conv
    assert message["content"] == "hello"
    assert message["jobId"] == "job_1"
    assert message["senderUserId"] == server.user_id
    assert message["isFromViewer"] is True
    assert message["createdAt"] == message["updatedAt"] == "2026-06-12T09:15:00.123Z"
    assert message["messageType"] is None
    assert message["editedAt"] is None
    assert message["system"] is False
    assert message["attachmentCount"] == 0
    assert reply.headers["X-Request-Id"]
    assert server.messages(conv) == [message]
    second = await send(http, server, conv, "again")
    assert second.json["message"]["id"] != message["id"]
    assert second.headers["X-Request-Id"] != reply.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("body", "issues"),
    [
        pytest.param(b"", None, id="empty-body"),
        pytest.param(b"   ", None, id="blank-body"),
        pytest.param(b'{"conversationId": ', None, id="invalid-json"),
        pytest.param(b"[1, 2]", [("invalid_type", [])], id="array-body"),
        pytest.param(b"null", [("invalid_type", [])], id="null-body"),
        pytest.param(b'{"content": "x"}', [("invalid_type", ["conversationId"])], id="no-conv"),
        pytest.param(
            b'{"conversationId": "", "content": "x"}',
            [("too_small", ["conversationId"])],
            id="empty-conv",
        ),
        pytest.param(
            b'{"conversationId": 7, "content": "x"}',
            [("invalid_type", ["conversationId"])],
            id="numeric-conv",
        ),
        pytest.param(b'{"conversationId": "c"}', [("invalid_type", ["content"])], id="no-content"),
        pytest.param(
            b'{"conversationId": "c", "content": ""}',
            [("too_small", ["content"])],
            id="empty-content",
        ),
        pytest.param(
            b'{"conversationId": "c", "content": null}',
            [("invalid_type", ["content"])],
            id="null-content",
        ),
        pytest.param(
            b'{"conversationId": "c", "content": "' + b"a" * 10_001 + b'"}',
            [("too_big", ["content"])],
            id="long-content",
        ),
        pytest.param(
            b"{}",
            [("invalid_type", ["conversationId"]), ("invalid_type", ["content"])],
            id="both-missing",
        ),
    ],
)
async def test_send_validation_errors_answer_400(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    body: bytes,
    issues: list[tuple[str, list[str]]] | None,
) -> None:
    """Malformed send bodies answer 400 BAD_REQUEST, with zod-like issues for field errors."""
    reply = await call(http, server, "POST", "/messages", data=body)
    details = assert_envelope(reply, 400, "BAD_REQUEST")
    if issues is None:
        assert "issues" not in details
    else:
        got = [(issue["code"], issue["path"]) for issue in details["issues"]]
        assert got == issues
        for issue in details["issues"]:
            assert isinstance(issue["message"], str)
            if issue["code"] == "too_small":
                assert issue["minimum"] == 1
            if issue["code"] == "too_big":
                assert issue["maximum"] == 10_000
    assert server.stats()["committed"] == 0


async def test_content_length_counts_utf16_code_units(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """10,000 UTF-16 units pass ("😀"*5000) and 10,002 fail ("😀"*5001), as zod counts."""
    ok = await send(http, server, conv, "😀" * 5000)
    assert ok.status == 201
    assert ok.json["message"]["content"] == "😀" * 5000
    too_long = await send(http, server, conv, "😀" * 5001)
    details = assert_envelope(too_long, 400, "BAD_REQUEST")
    assert details["issues"][0]["code"] == "too_big"
    assert details["issues"][0]["path"] == ["content"]
    assert (await send(http, server, conv, "a" * 10_000)).status == 201


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="missing"),
        pytest.param("ot_pat_unknown", id="unknown"),
    ],
)
async def test_bad_token_answers_401(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, token: str | None
) -> None:
    """A missing or unknown bearer token answers 401 UNAUTHORIZED on every endpoint."""
    assert_envelope(await send(http, server, conv, "x", token=token), 401, "UNAUTHORIZED")
    read = await call(
        http, server, "GET", "/messages", token=token, params={"conversationId": conv}
    )
    assert_envelope(read, 401, "UNAUTHORIZED")
    assert server.messages(conv) == []


async def test_non_bearer_authorization_answers_401(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """An Authorization header with another scheme is not a token: 401."""
    async with http.post(
        server.base_url + API + "/messages",
        headers={"Authorization": f"Basic {server.token}"},
        json={"conversationId": conv, "content": "x"},
    ) as resp:
        assert resp.status == 401


@pytest.mark.parametrize(
    ("account", "reason", "extra"),
    [
        pytest.param(
            {"scopes": ("messages:read",)},
            "insufficient_scope",
            {"requiredScope": "messages:write"},
            id="scope",
        ),
        pytest.param({"messaging_writes": False}, "feature_disabled", {}, id="feature"),
        pytest.param(
            {"claimed": False},
            "account_claim_required",
            {"claimUrl": "https://app.opentrain.ai/claim"},
            id="unclaimed",
        ),
    ],
)
async def test_account_refusals_answer_403(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    account: dict[str, Any],
    reason: str,
    extra: dict[str, str],
) -> None:
    """Missing scope, disabled feature and unclaimed account answer 403 with their reason."""
    other = server.add_token("ot_pat_other", **account)
    conv = server.add_conversation(members=[other])
    details = assert_envelope(
        await send(http, server, conv, "x", token=other.token), 403, "FORBIDDEN"
    )
    assert details["reason"] == reason
    for key, value in extra.items():
        assert details[key] == value
    assert server.messages(conv) == []


async def test_account_checks_come_before_conversation_lookup(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """An unclaimed account gets 403 even for an unknown conversation (check order)."""
    other = server.add_token("ot_pat_unclaimed", claimed=False)
    details = assert_envelope(
        await send(http, server, "conv_missing", "x", token=other.token), 403, "FORBIDDEN"
    )
    assert details["reason"] == "account_claim_required"


async def test_non_participant_answers_403(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """Sending into a conversation you are not part of answers 403 not_participant."""
    conv = server.add_conversation(participant=False)
    details = assert_envelope(await send(http, server, conv, "x"), 403, "FORBIDDEN")
    assert details == {"reason": "not_participant"}


async def test_policy_blocked_content_answers_403(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """Content containing a blocked substring answers 403 message_policy_blocked + policy."""
    server.block_content("darn", policy="profanity")
    details = assert_envelope(await send(http, server, conv, "oh darn it"), 403, "FORBIDDEN")
    assert details == {"reason": "message_policy_blocked", "policy": "profanity"}
    assert (await send(http, server, conv, "oh dear")).status == 201
    assert [m["content"] for m in server.messages(conv)] == ["oh dear"]


async def test_unknown_conversation_answers_404(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """A send to a conversation that does not exist answers 404 NOT_FOUND."""
    assert_envelope(await send(http, server, "conv_nope", "x"), 404, "NOT_FOUND")


async def test_unknown_route_answers_404_envelope(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """Paths outside the route table answer 404 with the JSON envelope."""
    assert_envelope(await call(http, server, "GET", "/nope"), 404, "NOT_FOUND")
    assert_envelope(await call(http, server, "DELETE", "/messages"), 404, "NOT_FOUND")
    async with http.get(server.base_url + "/elsewhere") as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "reason",
    ["read_only_conversation", "employer_first_message_required", "message_blocked"],
)
async def test_send_block_answers_409(
    server: FakeOpenTrain, http: aiohttp.ClientSession, reason: str
) -> None:
    """A conversation with a send block answers 409 CONFLICT with that reason."""
    conv = server.add_conversation(send_block=reason)
    details = assert_envelope(await send(http, server, conv, "x"), 409, "CONFLICT")
    assert details == {"reason": reason}
    assert server.messages(conv) == []


# ---------------------------------------------------------------- scripted answers


@pytest.mark.parametrize(
    ("kwargs", "body_hint", "header"),
    [
        pytest.param({"retry_after": 2}, 2, None, id="int"),
        pytest.param({"retry_after": 0.25}, 0.25, None, id="float"),
        pytest.param({"in_body": False, "header": "3"}, None, "3", id="header-only"),
        pytest.param({"retry_after": 1.5, "header": "2"}, 1.5, "2", id="both"),
    ],
)
async def test_throttle_next_answers_429_with_hint(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    conv: str,
    kwargs: dict[str, Any],
    body_hint: float | None,
    header: str | None,
) -> None:
    """throttle_next(n) answers 429 RATE_LIMITED n times, hint in body and/or header."""
    server.throttle_next(2, **kwargs)
    for _ in range(2):
        reply = await send(http, server, conv, "x")
        details = assert_envelope(reply, 429, "RATE_LIMITED")
        assert details["reason"] == "rate_limited"
        if body_hint is None:
            assert "retryAfterSeconds" not in details
        else:
            assert details["retryAfterSeconds"] == body_hint
            assert type(details["retryAfterSeconds"]) is type(body_hint)
        assert reply.headers.get("Retry-After") == header
    assert (await send(http, server, conv, "x")).status == 201
    assert server.stats()["rate_limited"] == 2
    assert len(server.messages(conv)) == 1


async def test_fail_next_default_envelope_and_raw_body(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """fail_next answers the status before committing: JSON envelope, or the raw body given."""
    server.fail_next(1)
    server.fail_next(1, status=502, body="<html>502 Bad Gateway</html>", content_type="text/html")
    assert_envelope(await send(http, server, conv, "x"), 500, "INTERNAL_ERROR")
    html = await send(http, server, conv, "x")
    assert html.status == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert html.text == "<html>502 Bad Gateway</html>"
    assert server.messages(conv) == []
    assert (await send(http, server, conv, "x")).status == 201


async def test_scripted_answers_come_before_validation(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """Scripted failures apply even to sends that would fail validation (check order)."""
    server.fail_next(1, status=503)
    assert_envelope(await call(http, server, "POST", "/messages", data=b""), 503, "INTERNAL_ERROR")


async def test_script_answers_any_route_then_the_real_answer_resumes(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """script() answers the next n requests to one route as told; others are untouched."""
    server.script("GET /messages", json={"messages": [], "nextCursor": "x"}, times=2)
    server.script("GET /auth/me", status=503, body="<html>busy</html>", content_type="text/html")
    for _ in range(2):
        reply = await call(http, server, "GET", "/messages", params={"conversationId": conv})
        assert (reply.status, reply.json) == (200, {"messages": [], "nextCursor": "x"})
        assert reply.headers["X-Request-Id"]
    real = await call(http, server, "GET", "/messages", params={"conversationId": conv})
    assert (real.status, real.json["messages"]) == (200, [])
    assert real.json["nextCursor"] is None
    me = await call(http, server, "GET", "/auth/me")
    assert (me.status, me.text, me.headers["Content-Type"]) == (
        503,
        "<html>busy</html>",
        "text/html",
    )
    assert (await call(http, server, "GET", "/auth/me")).status == 200
    assert server.stats()["faults"] == 3


async def test_script_fires_before_auth_and_on_unserved_paths(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """A scripted answer comes before authentication (like a gateway) and works for any path."""
    server.script("POST /thing", status=202, json={"ok": True}, headers={"X-Extra": "1"})
    reply = await call(http, server, "POST", "/thing", token="ot_pat_nobody")
    assert (reply.status, reply.json, reply.headers["X-Extra"]) == (202, {"ok": True}, "1")
    assert_envelope(await call(http, server, "POST", "/thing"), 404, "NOT_FOUND")


async def test_script_envelope_after_commit_and_forever(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """An error envelope after the commit stores the message; times=None never runs out."""
    server.script("POST /messages", status=503, details={"why": "proxy"}, after_commit=True)
    reply = await send(http, server, conv, "kept")
    assert assert_envelope(reply, 503, "INTERNAL_ERROR") == {"why": "proxy"}
    assert reply.json["error"] == "Service Unavailable"
    assert [m["content"] for m in server.messages(conv)] == ["kept"]
    server.script("POST /messages", status=418, error="teapot", times=None)
    for _ in range(3):
        teapot = await send(http, server, conv, "no")
        assert assert_envelope(teapot, 418, "BAD_REQUEST") == {}
        assert teapot.json["error"] == "teapot"
    assert len(server.messages(conv)) == 1
    server.clear_faults()
    assert (await send(http, server, conv, "yes")).status == 201


async def test_script_rules_apply_in_order_and_count_as_stats(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """throttle_next, fail_next and script() queue in order; 429s count as rate_limited."""
    server.throttle_next(2, retry_after=0.5)
    server.fail_next(1, status=502)
    server.script("POST /messages", probability=0.0, status=500, times=None)  # never fires
    statuses = [(await send(http, server, conv, f"m{i}")).status for i in range(4)]
    assert statuses == [429, 429, 502, 201]
    stats = server.stats()
    assert (stats["rate_limited"], stats["faults"], stats["committed"]) == (2, 1, 1)


async def test_script_drop_closes_the_connection_unanswered(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """drop=True closes the connection: the client sees a disconnect and nothing is stored."""
    server.script("POST /messages", drop=True)
    with pytest.raises(aiohttp.ClientError):
        await send(http, server, conv, "lost")
    assert server.messages(conv) == []
    assert server.sends[-1].status is None


@pytest.mark.parametrize(
    ("route", "options", "match"),
    [
        ("messages", {}, "route must look like"),
        ("FETCH /messages", {}, "route must look like"),
        ("GET /messages", {"after_commit": True}, "after_commit applies"),
        ("POST /messages", {"status": 99}, "HTTP status"),
        ("POST /messages", {"probability": 1.5}, "probability"),
    ],
)
def test_script_refuses_what_it_cannot_do(route: str, options: dict[str, Any], match: str) -> None:
    """A malformed route, an impossible stage, status or probability is a clear ValueError."""
    with pytest.raises(ValueError, match=match):
        FakeOpenTrain().script(route, **options)


# ---------------------------------------------------------------- the parts, without HTTP


def test_world_applies_the_send_rules_in_the_documented_order() -> None:
    """World.send: write access, then not found, not a participant, blocked, policy, limit;
    a stored message is counted and announced to other account holders."""
    time = FakeTime()
    world = World("ot_pat_a", clock=time.clock, now=time.datetime)
    me = world.default
    person = world.add_token("ot_pat_b", user_id="user_other")
    conv = world.add_conversation()
    closed = world.add_conversation(send_block="read_only_conversation")
    elsewhere = world.add_conversation(participant=False)
    world.block_content("SPAM", policy="spam")
    world.set_rate_limit(TokenBucket(rate=1, burst=1))
    refusals = []
    for target, text in [("nope", "x"), (elsewhere, "x"), (closed, "x"), (conv, "SPAM!")]:
        with pytest.raises(ApiError) as info:
            world.send(me, target, text)
        refusals.append((info.value.status, (info.value.details or {}).get("reason")))
    assert refusals == [
        (404, None),
        (403, "not_participant"),
        (409, "read_only_conversation"),
        (403, "message_policy_blocked"),
    ]
    message = world.send(me, conv, "hello")
    with pytest.raises(ApiError) as limited:
        world.send(me, conv, "too soon")
    assert limited.value.status == 429
    assert limited.value.details == {"reason": "rate_limited", "retryAfterSeconds": 1.0}
    time.advance(1.0)
    world.send(me, conv, "hello")
    assert (world.committed, world.duplicates, world.distinct, world.throttled) == (2, 1, 1, 1)
    announced = [e["data"]["messageId"] for e in world.events(person.token)]
    assert announced[:1] == [message["id"]]
    assert world.events() == []
    me.scopes = frozenset({"messages:read"})
    with pytest.raises(ApiError) as scope:
        world.send(me, conv, "x")
    assert scope.value.details == {
        "reason": "insufficient_scope",
        "requiredScope": "messages:write",
    }


def test_world_pages_messages_with_cursors() -> None:
    """World.list_messages pages newest first with an opaque cursor that decodes back."""
    world = World("ot_pat_a")
    conv = world.add_conversation()
    for i in range(5):
        world.add_incoming_message(conv, f"m{i}")
    first = world.list_messages(world.default.user_id, conv, 2, None, "older")
    assert [m["content"] for m in first["messages"]] == ["m4", "m3"]
    cursor = decode_cursor(first["nextCursor"])
    second = world.list_messages(world.default.user_id, conv, 2, cursor, "older")
    assert [m["content"] for m in second["messages"]] == ["m2", "m1"]
    assert decode_cursor("not base64 json!") is None


def test_zod_issues_match_the_servers_shapes() -> None:
    """The validation helpers give zod's issue shapes, lengths in UTF-16 code units."""
    assert string_issues({"content": "😀" * 5000}, "content", 1, 10_000) == []
    (too_big,) = string_issues({"content": "😀" * 5001}, "content", 1, 10_000)
    assert (too_big["code"], too_big["maximum"], too_big["path"]) == (
        "too_big",
        10_000,
        ["content"],
    )
    (missing,) = string_issues({}, "content", 1, None)
    assert (missing["message"], missing["received"]) == ("Required", "undefined")
    issues: list[dict[str, Any]] = []
    assert int_param({"limit": "2.5"}, "limit", 20, 1, 100, issues) == 20
    assert enum_param({"direction": "up"}, "direction", ("older", "newer"), issues) is None
    assert [i["code"] for i in issues] == ["invalid_type", "invalid_enum_value"]
    assert utf16_len("a😀") == 3


# ---------------------------------------------------------------- rate limits


async def test_token_bucket_gives_exact_float_hints(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, clock: FakeTime
) -> None:
    """TokenBucket admits `burst` sends, then hints the exact seconds until the next token."""
    server.set_rate_limit(TokenBucket(rate=4.0, burst=2))
    assert (await send(http, server, conv, "1")).status == 201
    assert (await send(http, server, conv, "2")).status == 201
    limited = await send(http, server, conv, "3")
    details = assert_envelope(limited, 429, "RATE_LIMITED")
    assert details == {"reason": "rate_limited", "retryAfterSeconds": 0.25}
    assert "Retry-After" not in limited.headers
    clock.advance(0.125)
    details = assert_envelope(await send(http, server, conv, "3"), 429, "RATE_LIMITED")
    assert details["retryAfterSeconds"] == pytest.approx(0.125)
    clock.advance(0.125)
    assert (await send(http, server, conv, "3")).status == 201
    clock.advance(10)  # refills only up to burst
    assert (await send(http, server, conv, "4")).status == 201
    assert (await send(http, server, conv, "5")).status == 201
    assert (await send(http, server, conv, "6")).status == 429
    assert server.stats()["rate_limited"] == 3
    assert server.stats()["committed"] == 5


async def test_token_bucket_integer_hints_and_header(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, clock: FakeTime
) -> None:
    """integer_hints rounds the wait up to whole seconds (at least 1); the header is opt-in."""
    server.set_rate_limit(
        TokenBucket(rate=0.4, burst=1, integer_hints=True, retry_after_header=True)
    )
    assert (await send(http, server, conv, "1")).status == 201
    reply = await send(http, server, conv, "2")
    details = assert_envelope(reply, 429, "RATE_LIMITED")
    assert details["retryAfterSeconds"] == 3  # 2.5 s rounded up
    assert type(details["retryAfterSeconds"]) is int
    assert reply.headers["Retry-After"] == "3"
    clock.advance(2.4)  # 0.1 s left -> still at least 1
    assert assert_envelope(await send(http, server, conv, "2"), 429, "RATE_LIMITED") == {
        "reason": "rate_limited",
        "retryAfterSeconds": 1,
    }
    clock.advance(0.1)
    assert (await send(http, server, conv, "2")).status == 201


async def test_rate_limit_is_per_account_and_removable(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """Each token has its own bucket, and set_rate_limit(None) lifts the limit."""
    other = server.add_token("ot_pat_second")
    server.conversation(conv).participants.add(other.user_id)
    server.set_rate_limit(TokenBucket(rate=1.0, burst=1))
    assert (await send(http, server, conv, "a")).status == 201
    assert (await send(http, server, conv, "b")).status == 429
    assert (await send(http, server, conv, "c", token=other.token)).status == 201
    server.set_rate_limit(None)
    assert (await send(http, server, conv, "d")).status == 201


async def test_fixed_window_hints_until_window_end(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, clock: FakeTime
) -> None:
    """FixedWindow admits `limit` per window and hints the seconds until the window ends."""
    server.set_rate_limit(FixedWindow(limit=2, window=1.0))
    clock.advance(0.25)
    assert (await send(http, server, conv, "1")).status == 201
    assert (await send(http, server, conv, "2")).status == 201
    details = assert_envelope(await send(http, server, conv, "3"), 429, "RATE_LIMITED")
    assert details["retryAfterSeconds"] == 0.75
    clock.advance(0.5)
    details = assert_envelope(await send(http, server, conv, "3"), 429, "RATE_LIMITED")
    assert details["retryAfterSeconds"] == 0.25
    clock.advance(0.25)  # exactly at the boundary: a new window
    assert (await send(http, server, conv, "3")).status == 201
    assert (await send(http, server, conv, "4")).status == 201
    assert (await send(http, server, conv, "5")).status == 429


async def test_fixed_window_integer_hints(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, clock: FakeTime
) -> None:
    """FixedWindow with integer_hints answers whole seconds, at least 1."""
    server.set_rate_limit(FixedWindow(limit=1, window=10.0, integer_hints=True))
    clock.advance(8.5)
    assert (await send(http, server, conv, "1")).status == 201
    details = assert_envelope(await send(http, server, conv, "2"), 429, "RATE_LIMITED")
    assert details["retryAfterSeconds"] == 2


async def test_rate_limit_comes_after_policy_checks(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """Refused sends (409 here) never consume rate-limit budget."""
    blocked = server.add_conversation(send_block="message_blocked")
    open_conv = server.add_conversation()
    server.set_rate_limit(TokenBucket(rate=1.0, burst=1))
    assert (await send(http, server, blocked, "x")).status == 409
    assert (await send(http, server, open_conv, "x")).status == 201


# ---------------------------------------------------------------- faults


def no_server_noise(caplog: pytest.LogCaptureFixture) -> None:
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == []


@pytest.mark.parametrize(
    ("fault", "stored"),
    [
        pytest.param(Fault.RESET_AFTER_COMMIT, True, id="reset-after"),
        pytest.param(Fault.RESET_BEFORE_COMMIT, False, id="reset-before"),
    ],
)
async def test_reset_faults_drop_the_connection(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    conv: str,
    caplog: pytest.LogCaptureFixture,
    fault: Fault,
    stored: bool,
) -> None:
    """Reset faults drop the connection with no answer; only the after-commit one stores."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    assert (await send(http, server, conv, "warm-up")).status == 201  # keep-alive in the pool
    server.inject_fault(fault, count=1)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await send(http, server, conv, "dropped")
    assert [m["content"] for m in server.messages(conv)] == (
        ["warm-up", "dropped"] if stored else ["warm-up"]
    )
    assert server.sends[-1].status is None
    assert server.stats()["faults"] == 1
    assert (await send(http, server, conv, "after")).status == 201
    no_server_noise(caplog)


@pytest.mark.parametrize(
    ("fault", "stored"),
    [
        pytest.param(Fault.BAD_GATEWAY_AFTER_COMMIT, True, id="after"),
        pytest.param(Fault.BAD_GATEWAY_BEFORE_COMMIT, False, id="before"),
    ],
)
async def test_bad_gateway_faults_answer_html_502(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    conv: str,
    fault: Fault,
    stored: bool,
) -> None:
    """Bad-gateway faults answer an HTML 502; only the after-commit one stores."""
    server.inject_fault(fault, count=1)
    reply = await send(http, server, conv, "x")
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in reply.text
    assert len(server.messages(conv)) == (1 if stored else 0)
    assert server.sends[-1].status == 502
    assert (await send(http, server, conv, "y")).status == 201


async def test_timeout_after_commit_delays_then_answers(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """TIMEOUT_AFTER_COMMIT stores the message, then answers normally after `delay`."""
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=0.05)
    reply = await send(http, server, conv, "slow")
    assert reply.status == 201
    assert [m["content"] for m in server.messages(conv)] == ["slow"]


async def test_timeout_fault_times_out_client_and_close_is_clean(
    clock: FakeTime, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A stalled request times the client out, keeps the message, and close() ends it fast."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    committed = asyncio.Event()

    def now() -> datetime:
        committed.set()  # called when a message is stored; the stall starts right after
        return FIXED_NOW

    server = FakeOpenTrain(clock=clock.clock, now=now)
    await server.start()
    try:
        conv = server.add_conversation()
        server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT)  # every send, default 60 s
        with pytest.raises(asyncio.TimeoutError):
            await http.post(
                server.base_url + API + "/messages",
                headers={"Authorization": f"Bearer {server.token}"},
                json={"conversationId": conv, "content": "stalled"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            )
        assert [m["content"] for m in server.messages(conv)] == ["stalled"]
        # a second stalled request whose client is still connected when we close
        committed.clear()
        pending = asyncio.ensure_future(send(http, server, conv, "stalled too"))
        await asyncio.wait_for(committed.wait(), timeout=10)
        assert server.in_flight == 2
    finally:
        await asyncio.wait_for(server.close(), timeout=5)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await pending
    assert server.in_flight == 0
    assert [r.status for r in server.sends] == [None, None]
    no_server_noise(caplog)


async def test_fault_count_probability_and_clear(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """count=N fires N times; probability draws from the seeded RNG; clear_faults removes all."""
    server.inject_fault(Fault.BAD_GATEWAY_BEFORE_COMMIT, count=2)
    statuses = [(await send(http, server, conv, f"{i}")).status for i in range(3)]
    assert statuses == [502, 502, 201]
    server.inject_fault(Fault.BAD_GATEWAY_BEFORE_COMMIT, probability=0.5)
    statuses = [(await send(http, server, conv, f"p{i}")).status for i in range(40)]
    assert 5 < statuses.count(502) < 35
    assert set(statuses) == {201, 502}
    server.clear_faults()
    assert (await send(http, server, conv, "clean")).status == 201
    assert server.stats()["faults"] == 2 + statuses.count(502)


async def test_fault_probability_is_reproducible_with_seed(http: aiohttp.ClientSession) -> None:
    """Two servers with the same seed fail the same sends."""
    patterns = []
    for _ in range(2):
        async with FakeOpenTrain(seed=42) as fake:
            conv = fake.add_conversation()
            fake.inject_fault(Fault.BAD_GATEWAY_AFTER_COMMIT, probability=0.3)
            patterns.append([(await send(http, fake, conv, "x")).status for _ in range(20)])
    assert patterns[0] == patterns[1]
    assert 502 in patterns[0]


# ---------------------------------------------------------------- recording & stats


async def test_requests_are_recorded_with_token_redacted(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str, clock: FakeTime
) -> None:
    """Every request is recorded in order; the Authorization header value is redacted."""
    clock.advance(5.0)
    await send(http, server, conv, "hi")
    await call(http, server, "GET", "/messages", params={"conversationId": conv, "limit": "5"})
    await send(http, server, conv, "x", token=None)
    first, second, third = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.status) == ("POST", API + "/messages", 201)
    assert first.json == {"conversationId": conv, "content": "hi"}
    assert first.raw_body == b'{"conversationId": "' + conv.encode() + b'", "content": "hi"}'
    assert first.token == server.token
    assert first.headers["Authorization"] == "Bearer ***"
    assert server.token not in str(first.headers)
    assert first.received_at == clock.clock()
    assert first.conversation_id == conv
    assert (second.method, second.query, second.status) == (
        "GET",
        {"conversationId": conv, "limit": "5"},
        200,
    )
    assert second.json is None
    assert second.raw_body == b""
    assert (third.token, third.status) == (None, 401)
    assert "Authorization" not in third.headers
    assert server.sends == [first, third]
    stats = server.stats()
    assert (stats["requests"], stats["sends"], stats["committed"]) == (3, 2, 1)


async def test_duplicates_counts_repeated_conversation_content_pairs(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """stats().duplicates counts (conversationId, content) pairs stored more than once."""
    a = server.add_conversation()
    b = server.add_conversation()
    for conv, content in [(a, "x"), (a, "x"), (a, "x"), (b, "x"), (a, "y"), (b, "y"), (b, "y")]:
        assert (await send(http, server, conv, content)).status == 201
    assert server.stats()["duplicates"] == 2
    assert server.stats()["distinct"] == 4  # 7 committed: 3 extra copies
    server.add_incoming_message(a, "y")  # not a send: not counted
    assert server.stats()["duplicates"] == 2
    server.reset_stats()
    assert server.stats() == {
        "distinct": 0,
        "requests": 0,
        "sends": 0,
        "committed": 0,
        "rate_limited": 0,
        "faults": 0,
        "duplicates": 0,
        "peak_in_flight": 0,
    }
    assert len(server.requests) == 7


async def test_peak_in_flight_observes_concurrency(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """peak_in_flight reports how many requests the server handled at once."""
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=6, delay=0.5)
    replies = await asyncio.gather(*(send(http, server, conv, f"{i}") for i in range(6)))
    assert [r.status for r in replies] == [201] * 6
    assert server.peak_in_flight == 6
    assert server.stats()["peak_in_flight"] == 6
    assert server.in_flight == 0


async def test_no_repr_or_error_shows_a_token(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """Tokens never appear in the reprs of the server, its accounts, requests or sends, nor
    in its errors (a test failure report prints all of these)."""
    secret = "ot_pat_do_not_print_4242"
    account = server.add_token(secret)
    server.conversation(conv).participants.add(account.user_id)
    assert (await send(http, server, conv, "hi", token=secret)).status == 201
    assert (await call(http, server, "GET", "/auth/me", token=secret)).status == 200
    shown = [
        repr(server),
        str(server),
        repr(account),
        repr(server.account(secret)),
        repr(server.requests),
        repr(server.sends),
        str(server.sends[0]),
    ]
    for text in shown:
        assert secret not in text
        assert server.token not in text
    assert "'<redacted>'" in repr(server.sends[0])
    assert server.sends[0].token == secret  # still there for assertions
    for bad in (lambda: server.add_token(secret), lambda: server.account(secret + "x")):
        with pytest.raises((ValueError, KeyError)) as info:
            bad()
        assert secret not in str(info.value)
        assert secret not in repr(info.value)


# ---------------------------------------------------------------- GET /messages


def contents(reply: Reply) -> list[str]:
    return [m["content"] for m in reply.json["messages"]]


async def read_page(http: aiohttp.ClientSession, server: FakeOpenTrain, **params: str) -> Reply:
    reply = await call(http, server, "GET", "/messages", params=params)
    assert reply.status == 200, reply.text
    return reply


async def test_read_older_pages_back_without_dups_or_skips(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """direction=older: newest first, paging back; new arrivals between pages do not shift it."""
    for i in range(45):
        server.add_incoming_message(conv, f"m{i}")
    page = await read_page(http, server, conversationId=conv)
    assert contents(page) == [f"m{i}" for i in range(44, 24, -1)]  # default limit 20
    seen = contents(page)
    cursor = page.json["nextCursor"]
    await send(http, server, conv, "new while paging")
    while cursor is not None:
        page = await read_page(http, server, conversationId=conv, cursor=cursor, limit="20")
        seen += contents(page)
        cursor = page.json["nextCursor"]
    assert seen == [f"m{i}" for i in range(44, -1, -1)]


async def test_read_newer_pages_forward_and_sees_new_messages(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """direction=newer: oldest first, paging forward; messages added meanwhile show up once."""
    for i in range(5):
        server.add_incoming_message(conv, f"m{i}")
    page = await read_page(http, server, conversationId=conv, direction="newer", limit="2")
    seen = contents(page)
    assert seen == ["m0", "m1"]
    server.add_incoming_message(conv, "m5")
    cursor = page.json["nextCursor"]
    while cursor is not None:
        page = await read_page(
            http, server, conversationId=conv, direction="newer", limit="2", cursor=cursor
        )
        seen += contents(page)
        cursor = page.json["nextCursor"]
    assert seen == [f"m{i}" for i in range(6)]


async def test_read_entries_have_message_shape_relative_to_caller(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """Read entries have the send shape; isFromViewer is computed for the calling token."""
    other = server.add_token("ot_pat_reader", scopes=("messages:read",), claimed=False)
    conv = server.add_conversation(members=[other])
    sent = (await send(http, server, conv, "mine")).json["message"]
    mine = (await read_page(http, server, conversationId=conv)).json["messages"]
    assert mine == [sent]
    theirs = await call(
        http, server, "GET", "/messages", token=other.token, params={"conversationId": conv}
    )
    assert theirs.status == 200  # unclaimed accounts can read
    assert theirs.json["messages"] == [{**sent, "isFromViewer": False}]
    assert set(theirs.json) == {"messages", "nextCursor"}


@pytest.mark.parametrize(
    ("params", "path"),
    [
        pytest.param({"limit": "0"}, ["limit"], id="limit-0"),
        pytest.param({"limit": "101"}, ["limit"], id="limit-101"),
        pytest.param({"limit": "abc"}, ["limit"], id="limit-nan"),
        pytest.param({"limit": "1.5"}, ["limit"], id="limit-float"),
        pytest.param({"direction": "sideways"}, ["direction"], id="direction"),
        pytest.param({"filter": "archived"}, ["filter"], id="filter"),
        pytest.param({"unreadOnly": "yes"}, ["unreadOnly"], id="unread"),
        pytest.param({"cursor": "garbage!"}, ["cursor"], id="cursor"),
        pytest.param({"conversationId": ""}, ["conversationId"], id="empty-conv"),
    ],
)
async def test_read_invalid_params_answer_400(
    server: FakeOpenTrain,
    http: aiohttp.ClientSession,
    conv: str,
    params: dict[str, str],
    path: list[str],
) -> None:
    """Invalid GET /messages parameters answer 400 with an issue for that parameter."""
    if "conversationId" not in params:
        params = {"conversationId": conv, **params}
    details = assert_envelope(
        await call(http, server, "GET", "/messages", params=params), 400, "BAD_REQUEST"
    )
    assert [issue["path"] for issue in details["issues"]] == [path]


async def test_read_cursor_must_match_conversation_and_direction(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """A cursor from another conversation or direction is rejected with 400."""
    for i in range(3):
        server.add_incoming_message(conv, f"m{i}")
    cursor = (await read_page(http, server, conversationId=conv, limit="1")).json["nextCursor"]
    other = server.add_conversation()
    for params in (
        {"conversationId": other, "cursor": cursor},
        {"conversationId": conv, "cursor": cursor, "direction": "newer"},
        {"cursor": cursor},
    ):
        reply = await call(http, server, "GET", "/messages", params=params)
        assert_envelope(reply, 400, "BAD_REQUEST")


async def test_read_refusals(server: FakeOpenTrain, http: aiohttp.ClientSession) -> None:
    """Reads answer 403 without messages:read, 404 unknown, 403 not participant / unreadable."""
    no_read = server.add_token("ot_pat_proposals_only", scopes=("proposals:read",))
    conv = server.add_conversation(members=[no_read])
    details = assert_envelope(
        await call(
            http, server, "GET", "/messages", token=no_read.token, params={"conversationId": conv}
        ),
        403,
        "FORBIDDEN",
    )
    assert details == {"reason": "insufficient_scope", "requiredScope": "messages:read"}
    assert_envelope(
        await call(http, server, "GET", "/messages", params={"conversationId": "nope"}),
        404,
        "NOT_FOUND",
    )
    for conv_id in (
        server.add_conversation(participant=False),
        server.add_conversation(readable=False),
    ):
        details = assert_envelope(
            await call(http, server, "GET", "/messages", params={"conversationId": conv_id}),
            403,
            "FORBIDDEN",
        )
        assert details == {"reason": "not_participant"}


async def test_list_conversations_most_recent_first_with_paging(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """List mode: caller's conversations by recency, paged without dups/skips, with summaries."""
    ids = [server.add_conversation() for _ in range(5)]
    server.add_conversation(participant=False)  # not visible
    server.add_incoming_message(ids[1], "ping")
    await send(http, server, ids[3], "pong")
    expected = [ids[3], ids[1], ids[4], ids[2], ids[0]]
    page = await read_page(http, server, limit="2")
    seen = [c["id"] for c in page.json["conversations"]]
    cursor = page.json["nextCursor"]
    server.add_incoming_message(ids[0], "late")  # moves to the top; must not repeat
    while cursor is not None:
        page = await read_page(http, server, limit="2", cursor=cursor)
        seen += [c["id"] for c in page.json["conversations"]]
        cursor = page.json["nextCursor"]
    assert seen == expected[:-1]
    top = (await read_page(http, server, limit="3")).json["conversations"]
    assert [c["id"] for c in top] == [ids[0], ids[3], ids[1]]
    late, pong, ping = top
    assert set(late) == {
        "id",
        "type",
        "bucket",
        "jobId",
        "proposalId",
        "channelName",
        "updatedAt",
        "lastMessage",
        "unreadCount",
        "needsReplyCount",
    }
    assert late["type"] == "DIRECT_MESSAGE"
    assert late["channelName"] is None
    assert late["lastMessage"]["content"] == "late"
    assert late["lastMessage"]["isFromViewer"] is False
    assert set(late["lastMessage"]) == {
        "id",
        "content",
        "senderUserId",
        "isFromViewer",
        "createdAt",
    }
    assert (late["unreadCount"], late["needsReplyCount"]) == (1, 1)
    assert pong["lastMessage"]["isFromViewer"] is True
    assert pong["unreadCount"] == 0
    assert ping["unreadCount"] == 1
    empty = (await read_page(http, server, limit="5")).json["conversations"][-1]
    assert empty["lastMessage"] is None


async def test_list_conversations_filter_and_unread_only(
    server: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """filter=job|proposal selects by bucket; unreadOnly keeps conversations with unread."""
    job = server.add_conversation(job_id="job_1")
    proposal = server.add_conversation(bucket="proposal", proposal_id="prop_1", job_id="job_1")
    server.add_incoming_message(job, "hi")
    server.add_incoming_message(proposal, "hello")
    await send(http, server, proposal, "answered")

    def ids(reply: Reply) -> list[str]:
        return [c["id"] for c in reply.json["conversations"]]

    assert ids(await read_page(http, server, filter="job")) == [job]
    listed = await read_page(http, server, filter="proposal")
    assert ids(listed) == [proposal]
    assert listed.json["conversations"][0]["proposalId"] == "prop_1"
    assert ids(await read_page(http, server)) == [proposal, job]
    for flag in ("true", "1"):
        assert ids(await read_page(http, server, unreadOnly=flag)) == [job]
    for flag in ("false", "0"):
        assert ids(await read_page(http, server, unreadOnly=flag)) == [proposal, job]


# ---------------------------------------------------------------- packaging


async def test_pytest_plugin_fixture_serves(
    fake_opentrain: FakeOpenTrain, http: aiohttp.ClientSession
) -> None:
    """The opt-in pytest plugin's fake_opentrain fixture yields a started server."""
    conv = fake_opentrain.add_conversation()
    assert (await send(http, fake_opentrain, conv, "via plugin")).status == 201


async def _serve_module(*args: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``python -m opentrain_async.testing ARGS``; the process and its READY line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opentrain_async.testing",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        return proc, (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


@pytest.mark.process
async def test_module_main_prints_ready_and_serves(http: aiohttp.ClientSession) -> None:
    """`python -m opentrain_async.testing` prints one READY line, serves, exits on SIGTERM."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc, line = await _serve_module(
        "--port", "0", "--conversations", "2", "--rate", "1000", "--burst", "10", env=env
    )
    try:
        word, base_url, token = line.split()
        assert word == "READY"
        assert base_url.startswith("http://127.0.0.1:")
        assert token.startswith("ot_pat_")
        async with http.post(
            base_url + API + "/messages",
            headers={"Authorization": f"Bearer {token}"},
            json={"conversationId": "conv_0002", "content": "bench"},
        ) as resp:
            assert resp.status == 201
        async with http.get(base_url + "/__fake__/stats") as resp:
            assert (await resp.json())["committed"] == 1
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0
    assert out == b""
    assert err == b""


async def _run_module(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m MODULE ARGS``, run in this process (the server under test is not)."""
    assert args[0] == "-m"
    result = await run_main(args[1], *args[2:], env=env)
    return result.code, result.out, result.err


@pytest.mark.process
async def test_out_of_process_server_has_a_second_person_and_takes_injected_messages(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A bot on the default token sees, as incoming, what the person sends with the CLI and
    what `python -m opentrain_async.testing inject` stores; its own sends are not echoed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path)}
    for name in ("OT_API_TOKEN", "OPENTRAIN_API_TOKEN", "OT_API_BASE_URL"):
        env.pop(name, None)
    proc, line = await _serve_module("--conversations", "2", env=env)
    try:
        _, base_url, token = line.split()
        async with http.get(base_url + "/__fake__/info") as resp:
            info = await resp.json()
        assert info["token"] == token
        assert info["baseUrl"] == base_url
        assert info["conversations"] == ["conv_0001", "conv_0002"]
        person = info["personToken"]
        assert person != token
        person_env = {**env, "OT_API_TOKEN": person, "OT_API_BASE_URL": base_url}
        code, _, err = await _run_module(
            "-m", "opentrain_async", "send", "conv_0001", "hi from a person", env=person_env
        )
        assert code == 0, err
        code, out, err = await _run_module(
            "-m", "opentrain_async.testing", "inject", base_url, "conv_0002", "injected", env=env
        )
        assert code == 0, err
        assert out.strip().startswith("msg_")
        code, _, err = await _run_module(
            "-m", "opentrain_async.testing", "inject", base_url, "conv_9999", "x", env=env
        )
        assert (code, "404" in err, "Traceback" in err) == (1, True, False)
        async with OpenTrainClient(token, base_url) as bot:
            await bot.send_message("conv_0001", "the bot's own reply")
            seen = [m async for m in bot.listen(start="beginning", until_idle=True)]
        assert [(m.conversation_id, m.content) for m in seen] == [
            ("conv_0001", "hi from a person"),
            ("conv_0002", "injected"),
        ]
        assert not any(m.is_from_viewer for m in seen)
        assert {m.sender_user_id for m in seen} == {info["personUserId"]}
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0


def test_each_feed_keeps_the_last_events_only() -> None:
    """A feed keeps its newest FEED_RETENTION events: a million sends to a person with a
    token (the out-of-process server's) cannot grow the server without bound."""
    world = World("ot_pat_a")
    person = world.add_token("ot_pat_b", user_id="user_other")
    conv = world.add_conversation()
    for i in range(FEED_RETENTION + 5):
        world.send(world.default, conv, f"m{i}")
    feed = world.events(person.token)
    assert len(feed) == FEED_RETENTION
    assert feed[0]["data"]["messageId"] == world.messages(conv)[5]["id"]
    page = world.updates(person, None, 3)
    assert [e["id"] for e in page["events"]] == [e["id"] for e in feed[:3]]


async def test_admin_inject_refuses_bad_bodies(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """POST /__fake__/inject validates like the API: clear 400s, 404 for an unknown
    conversation, and a stored, announced message on success."""
    url = server.base_url + "/__fake__/inject"
    for body, status in [
        (b"not json", 400),
        (b"[]", 400),
        (b'{"conversationId": "", "content": "x"}', 400),
        (b'{"conversationId": "c", "content": "x", "senderUserId": 5}', 400),
        (b'{"conversationId": "conv_9999", "content": "x"}', 404),
    ]:
        async with http.post(url, data=body) as resp:
            assert resp.status == status, body
    async with http.post(url, json={"conversationId": conv, "content": "hey"}) as resp:
        assert resp.status == 201
        message = (await resp.json())["message"]
    assert server.messages(conv)[-1]["id"] == message["id"]
    assert server.events()[-1]["data"] == {"conversationId": conv, "messageId": message["id"]}
    assert server.requests == []


async def test_api_sends_are_announced_to_other_account_holders(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """A message sent through the API lands in the feeds of the other participants that have
    a token, never in the sender's."""
    other = server.add_token("ot_pat_other_person", user_id="user_other")
    assert (await send(http, server, conv, "from the bot")).status == 201
    assert (await send(http, server, conv, "from the person", token=other.token)).status == 201
    mine = [e["data"]["messageId"] for e in server.events()]
    theirs = [e["data"]["messageId"] for e in server.events(other.token)]
    stored = [m["id"] for m in server.messages(conv)]
    assert (mine, theirs) == ([stored[1]], [stored[0]])


@pytest.mark.skipif(sys.platform == "win32", reason="needs loop signal handlers")
@pytest.mark.process
async def test_module_main_in_process_options(
    monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    """The CLI options configure limits and faults; SIGTERM stops the server cleanly."""
    from opentrain_async.testing import __main__ as cli

    ready = asyncio.Event()

    class Stdout(io.StringIO):
        def flush(self) -> None:
            ready.set()

    for argv, first, second in [
        (["--window-limit", "1", "--window", "60", "--integer-hints"], 201, 429),
        (["--rate", "0.001", "--retry-after-header"], 201, 429),
        (["--rate", "0.001", "--burst", "1", "--rate-change", "0:1e6"], 201, 201),  # moved
        (["--fault", "bad_gateway_before_commit", "--fault-rate", "1.0"], 502, 502),
    ]:
        ready.clear()
        out = Stdout()
        monkeypatch.setattr(sys, "stdout", out)
        task = asyncio.ensure_future(cli._serve(cli._parser().parse_args(argv)))
        await asyncio.wait_for(ready.wait(), timeout=10)
        _, base_url, token = out.getvalue().split()
        statuses = []
        for _ in range(2):
            async with http.post(
                base_url + API + "/messages",
                headers={"Authorization": f"Bearer {token}"},
                json={"conversationId": "conv_0001", "content": "x"},
            ) as resp:
                statuses.append(resp.status)
        assert statuses == [first, second]
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, timeout=10)


def test_limit_policies_reject_impossible_settings() -> None:
    """TokenBucket and FixedWindow refuse settings that could never admit a send."""
    for make in (
        lambda: TokenBucket(rate=0),
        lambda: TokenBucket(rate=1, burst=0),
        lambda: FixedWindow(limit=0),
        lambda: FixedWindow(limit=1, window=0),
    ):
        with pytest.raises(ValueError, match="must be"):
            make()


async def test_admin_endpoints_report_and_reset_stats(
    server: FakeOpenTrain, http: aiohttp.ClientSession, conv: str
) -> None:
    """/__fake__/stats and /__fake__/reset-stats expose counters out of band, unrecorded."""
    await send(http, server, conv, "x")
    async with http.get(server.base_url + "/__fake__/stats") as resp:
        assert (await resp.json())["committed"] == 1
    async with http.post(server.base_url + "/__fake__/reset-stats") as resp:
        assert (await resp.json())["committed"] == 0
    async with http.get(server.base_url + "/__fake__/nope") as resp:
        assert resp.status == 404
    assert len(server.requests) == 1
