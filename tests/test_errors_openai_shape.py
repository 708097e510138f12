"""Errors as openai-python users handle them: pickled, copied, with openai's body, never
holding the token, a huge error page kept to 8 KiB."""

from __future__ import annotations

import copy
import pickle

import pytest

from opentrain_async import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    DeliveryUnknownError,
    InvalidRequestError,
    NotAttemptedError,
    OpenTrainClient,
    OpenTrainError,
    PermissionDeniedError,
    RateLimitError,
    UnexpectedResponseError,
    WebhookVerificationError,
)
from opentrain_async._errors import error_from_response
from opentrain_async.testing import FakeOpenTrain

# -- errors as openai-python users handle them --------------------------------------------


def _every_kind_of_error() -> list[OpenTrainError]:
    rate_limited = error_from_response(
        429,
        b'{"error":"slow down","code":"RATE_LIMITED","requestId":"req_1",'
        b'"details":{"retryAfterSeconds":2.5}}',
        {},
        method="POST",
        path="/messages",
    )
    forbidden = error_from_response(
        403,
        b'{"error":"no","code":"FORBIDDEN","details":{"reason":"account_claim_required",'
        b'"claimUrl":"https://app.opentrain.ai/claim"}}',
        {"X-Request-Id": "req_2"},
    )
    return [
        rate_limited,
        forbidden,
        error_from_response(502, b"<html>Bad Gateway</html>", {}),
        InvalidRequestError("content too long", field="content", limit="1-10000", actual=10001),
        ConfigurationError("no token"),
        APIConnectionError("refused", reached_server=False, method="POST", path="/messages"),
        APITimeoutError("no answer within 30s"),
        DeliveryUnknownError(
            "maybe sent", cause=rate_limited, conversation_id="c1", started_at=1.0
        ),
        UnexpectedResponseError("not JSON", status=200, request_id="req_3"),
        NotAttemptedError("stopped", cause=forbidden),
        WebhookVerificationError("stale", reason="stale"),
    ]


@pytest.mark.parametrize("error", _every_kind_of_error(), ids=lambda e: type(e).__name__)
def test_every_error_survives_pickle_and_copy(error: OpenTrainError) -> None:
    """The README's arq worker (and multiprocessing, celery) pickle a job's exception;
    openai-python's errors pickle.  Ours come back as the same class with the same text
    and attributes, instead of a TypeError from the keyword-only constructors."""
    pickled = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    for clone in (pickled, copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        for name in ("message", "status", "code", "reason", "request_id", "body"):
            assert getattr(clone, name) == getattr(error, name), name
        assert dict(clone.details) == dict(error.details)
    clone = pickled
    if isinstance(error, RateLimitError):
        assert isinstance(clone, RateLimitError)
        assert (clone.retry_after, clone.status_code) == (2.5, 429)
    if isinstance(error, PermissionDeniedError):
        assert isinstance(clone, PermissionDeniedError)
        assert clone.claim_url == "https://app.opentrain.ai/claim"
    if isinstance(error, InvalidRequestError):
        assert isinstance(clone, InvalidRequestError)
        assert (clone.field, clone.limit, clone.actual) == ("content", "1-10000", 10001)
    if isinstance(error, APIConnectionError):
        assert isinstance(clone, APIConnectionError)
        assert clone.reached_server == error.reached_server


def test_a_status_error_has_openai_s_body() -> None:
    """``except APIStatusError as e: log(e.body)`` (openai-python's habit) reads the
    decoded error answer, or its text when it is not JSON; other errors have None."""
    errors = _every_kind_of_error()
    assert errors[0].body == {
        "error": "slow down",
        "code": "RATE_LIMITED",
        "requestId": "req_1",
        "details": {"retryAfterSeconds": 2.5},
    }
    assert errors[2].body == "<html>Bad Gateway</html>"
    assert error_from_response(503, b"", {}).body is None
    assert all(e.body is None for e in errors[3:])


async def test_body_of_a_server_s_error_never_holds_the_token(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A server (or proxy) that echoes the Authorization header in its error answer: the
    body the caller logs has it masked."""
    conv = server.add_conversation()
    server.script("POST /messages", status=403, json={"error": f"who is Bearer {server.token}?"})
    with pytest.raises(PermissionDeniedError) as info:
        await client.send_message(conv, "hi")
    assert server.token not in repr(info.value.body)
    assert info.value.body == {"error": "who is Bearer ***?"}


async def test_an_error_keeps_at_most_8_kib_of_a_huge_error_page(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A proxy's 2 MB error page on every send: each failure a batch keeps (up to 1,000)
    holds 8 KiB of it as ``body``, not the whole page (a GB for a bad day)."""
    conv = server.add_conversation()
    page = "<html>" + "x" * 2_000_000 + "</html>"
    server.script("POST /messages", status=403, body=page, content_type="text/html", times=2)
    report = await client.send_all([(conv, "a"), (conv, "b")], on_failure="continue")
    assert report.counts["forbidden"] == 2
    for outcome in report.failures:
        assert outcome.error is not None
        body = outcome.error.body
        assert isinstance(body, str)
        assert body.startswith("<html>xxx")
        assert body.endswith("...")
        assert len(body) <= 8192 + 3
