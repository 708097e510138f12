"""Turning every documented error answer (and proxy junk) into the right typed error."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opentrain_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from opentrain_async._errors import error_from_response, parse_retry_after


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
        (418, "TEAPOT", APIError),
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
