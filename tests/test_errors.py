"""Turning every documented error answer (and proxy junk) into the right typed error."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest

import opentrain_async
from opentrain_async import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    OpenTrainClient,
    OpenTrainError,
    PermissionDeniedError,
    RateLimitError,
    WebhookVerificationError,
    verify_webhook_signature,
)
from opentrain_async._errors import error_from_response, parse_retry_after
from opentrain_async.testing import FakeOpenTrain, Fault


def envelope(code: str, **details: Any) -> bytes:
    body: dict[str, Any] = {"error": "nope", "code": code, "requestId": "req-1"}
    if details:
        body["details"] = details
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "BAD_REQUEST", BadRequestError),
        (401, "UNAUTHORIZED", AuthenticationError),
        (403, "FORBIDDEN", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
        (409, "CONFLICT", ConflictError),
        (429, "RATE_LIMITED", RateLimitError),
        (500, "INTERNAL_ERROR", InternalServerError),
        (418, "TEAPOT", APIStatusError),
    ],
)
def test_status_maps_to_class(status: int, code: str, cls: type[APIError]) -> None:
    """Each documented status becomes its named class with the envelope parsed."""
    error = error_from_response(status, envelope(code), {}, method="POST", path="/messages")
    assert type(error) is cls
    assert (error.status, error.code, error.request_id, error.message) == (
        status,
        code,
        "req-1",
        "nope",
    )
    assert "POST /messages" in str(error)
    assert "req-1" in str(error)


def test_403_carries_reason_claim_url_and_policy() -> None:
    """403 exposes details.reason, claimUrl and policy as attributes."""
    claim = error_from_response(
        403, envelope("FORBIDDEN", reason="account_claim_required", claimUrl="https://c"), {}
    )
    assert isinstance(claim, PermissionDeniedError)
    assert claim.reason == "account_claim_required"
    assert claim.claim_url == "https://c"
    assert claim.policy is None
    policy = error_from_response(
        403, envelope("FORBIDDEN", reason="message_policy_blocked", policy="spam"), {}
    )
    assert isinstance(policy, PermissionDeniedError)
    assert policy.policy == "spam"
    assert "message_policy_blocked" in str(policy)


def test_409_carries_reason() -> None:
    """409's details.reason says which conflict blocked the send."""
    error = error_from_response(409, envelope("CONFLICT", reason="read_only_conversation"), {})
    assert error.reason == "read_only_conversation"


def test_400_exposes_zod_issues() -> None:
    """400's details.issues are available as .issues."""
    issues = [{"path": ["content"], "code": "too_big", "maximum": 10000}]
    error = error_from_response(400, envelope("BAD_REQUEST", issues=issues), {})
    assert isinstance(error, BadRequestError)
    assert error.issues == issues
    assert BadRequestError("x", status=400).issues == []


@pytest.mark.parametrize(
    ("details", "headers", "expected"),
    [
        ({"retryAfterSeconds": 2}, {}, 2.0),
        ({"retryAfterSeconds": 0.25}, {}, 0.25),
        ({"retryAfterSeconds": "1.5"}, {}, 1.5),
        ({}, {"Retry-After": "3"}, 3.0),
        ({}, {"Retry-After": "0.5"}, 0.5),
        ({"retryAfterSeconds": 4}, {"Retry-After": "9"}, 4.0),
        ({}, {}, None),
        ({}, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
    ],
)
def test_retry_after_from_body_then_header(
    details: dict[str, Any], headers: dict[str, str], expected: float | None
) -> None:
    """429's hint comes from details.retryAfterSeconds, then Retry-After, else None."""
    error = error_from_response(429, envelope("RATE_LIMITED", **details), headers)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == expected


@pytest.mark.parametrize("value", [True, -1, float("nan"), float("inf"), [1], "soon"])
def test_nonsense_retry_hints_are_ignored(value: object) -> None:
    """Booleans, negatives, NaN and non-numbers are not treated as hints."""
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    "body", [b"<html><body>502 Bad Gateway</body></html>", b"", b"\xff\xfe", b'["not an envelope"]']
)
def test_non_json_proxy_bodies_become_typed_errors(body: bytes) -> None:
    """HTML or empty 5xx bodies become InternalServerError, not a decode traceback."""
    error = error_from_response(502, body, {"X-Request-Id": "edge-9"})
    assert isinstance(error, InternalServerError)
    assert error.status == 502
    assert error.request_id == "edge-9"
    assert "502" in str(error)


def test_stdlib_json_fallback_round_trips() -> None:
    """Without orjson the stdlib codec produces the same compact UTF-8 JSON and parses it."""
    from opentrain_async._json import _std_dumps, _std_loads

    body = {"conversationId": "c1", "content": "héllo 😀"}
    assert _std_dumps(body) == '{"conversationId":"c1","content":"héllo 😀"}'.encode()
    assert _std_loads(_std_dumps(body)) == body


# -- the tree as openai-python users expect it ---------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_except_api_error_catches_a_network_failure() -> None:
    """A refused connection is caught by ``except APIError`` (as with openai), typed as
    APIConnectionError, and still answers every envelope attribute with None."""
    async with OpenTrainClient(
        "ot_pat_x", f"http://127.0.0.1:{_closed_port()}", max_retries=0
    ) as c:
        try:
            await c.send_message("conv_1", "hi")
        except APIError as exc:
            caught: APIError = exc
    assert isinstance(caught, APIConnectionError)
    assert caught.reached_server is False
    assert (caught.status, caught.code, caught.reason, caught.request_id) == (None,) * 4
    assert caught.details == {}
    assert "could not connect" in caught.message


async def test_delivery_unknown_is_a_connection_error_with_the_cause_chained(
    server: FakeOpenTrain,
) -> None:
    """A caller catching connection errors also catches an unknown outcome; the 502 behind it
    is its __cause__ (no .cause attribute any more) and lends it status and request id."""
    conv = server.add_conversation()
    server.fail_next(
        1,
        status=502,
        body=json.dumps({"error": "bad gateway", "code": "INTERNAL_ERROR", "requestId": "r-9"}),
    )
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.send_message(conv, "hi")
    error = info.value
    assert isinstance(error, DeliveryUnknownError)
    assert isinstance(error, APIError)
    assert isinstance(error.__cause__, InternalServerError)
    assert not hasattr(error, "cause")
    assert (error.status, error.request_id, error.conversation_id) == (502, "r-9", conv)
    assert error.reached_server is None


def test_status_errors_have_status_code_and_keep_status() -> None:
    """Every non-2xx answer is an APIStatusError with .status_code equal to .status."""
    for status in (400, 401, 403, 404, 409, 418, 429, 500, 503):
        error = error_from_response(status, envelope("X"), {})
        assert isinstance(error, APIStatusError)
        assert error.status_code == error.status == status


async def test_every_error_a_caller_meets_has_the_readme_attributes(
    server: FakeOpenTrain,
) -> None:
    """The README's promise: in ``except OpenTrainError as e`` every error has .status, .code,
    .message, .reason, .request_id and .details (None or empty where they do not apply)."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    seen: list[OpenTrainError] = []

    async def collect(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except OpenTrainError as exc:
            seen.append(exc)

    async with OpenTrainClient(server.token, server.base_url, timeout=0.2) as c:
        await collect(lambda: c.send_message(conv, ""))  # InvalidRequestError
        await collect(lambda: c.send_message(conv, "hi"))  # timeout -> DeliveryUnknownError
        await collect(lambda: c.read_messages("nope"))  # 404
    await collect(lambda: opentrain_async.send_message("c", "hi", base_url="http://example.com"))
    try:
        verify_webhook_signature("s", b"{}", "t=1,v1=00", now=1.0)
    except OpenTrainError as exc:
        seen.append(exc)
    kinds = {type(e) for e in seen}
    assert kinds == {
        InvalidRequestError,
        DeliveryUnknownError,
        NotFoundError,
        ConfigurationError,
        WebhookVerificationError,
    }
    for error in seen:
        assert isinstance(error.message, str)
        assert error.message
        assert error.status is None or isinstance(error.status, int)
        assert error.code is None or isinstance(error.code, str)
        assert error.reason is None or isinstance(error.reason, str)
        assert error.request_id is None or isinstance(error.request_id, str)
        assert isinstance(error.details, Mapping)
    timeout = next(e for e in seen if isinstance(e, DeliveryUnknownError))
    assert isinstance(timeout.__cause__, APITimeoutError)
    assert isinstance(timeout.__cause__, APIError)
    not_found = next(e for e in seen if isinstance(e, NotFoundError))
    assert (not_found.status, not_found.code) == (404, "NOT_FOUND")
