"""send_message against the fake server over loopback: results, every error row, retries."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import timezone

import aiohttp
import pytest

import opentrain_async
from opentrain_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    Message,
    NotFoundError,
    OpenTrainClient,
    PermissionDeniedError,
    RateLimitError,
    RetryEvent,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .conftest import make_client


async def test_send_returns_a_typed_message(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """A 201 becomes a frozen Message with snake_case fields and aware datetimes."""
    conv = server.add_conversation()
    message = await client.send_message(conv, "Batch 7 is live")
    assert isinstance(message, Message)
    assert message.conversation_id == conv
    assert message.content == "Batch 7 is live"
    assert message.is_from_viewer is True
    assert message.created_at.tzinfo is not None
    assert message.created_at.utcoffset() == timezone.utc.utcoffset(None)
    assert server.messages(conv)[0]["id"] == message.id
    with pytest.raises(AttributeError):
        message.content = "changed"  # type: ignore[misc]


async def test_request_on_the_wire(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """The request is POST /api/public/v1/messages with a bearer token and the camelCase body."""
    conv = server.add_conversation()
    await client.send_message(conv, "hi")
    (sent,) = server.sends
    assert sent.path == "/api/public/v1/messages"
    assert sent.token == server.token
    assert sent.json == {"conversationId": conv, "content": "hi"}
    assert sent.headers["Authorization"] == "Bearer ***"


async def test_emoji_boundary_is_accepted_by_both_sides(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """5,000 emoji are sent and accepted; 5,001 are refused locally with no request."""
    conv = server.add_conversation()
    await client.send_message(conv, "😀" * 5000)
    with pytest.raises(InvalidRequestError, match="10,002"):
        await client.send_message(conv, "😀" * 5001)
    assert len(server.sends) == 1


async def test_server_side_400_carries_issues(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A body the server rejects raises BadRequestError with zod issues, in one request."""
    with pytest.raises(BadRequestError) as info:
        await client.request("POST", "/messages", json_body={"content": ""})
    assert info.value.issues
    assert {tuple(i["path"]) for i in info.value.issues} >= {("conversationId",)}
    assert len(server.requests) == 1


async def test_401_unknown_token(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """An unknown token raises AuthenticationError after exactly one request."""
    conv = server.add_conversation()
    async with make_client(
        server, token="ot_pat_wrong", clock=no_wait.clock, sleep=no_wait.sleep
    ) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send_message(conv, "hi")
    assert info.value.status == 401
    assert info.value.code == "UNAUTHORIZED"
    assert len(server.requests) == 1
    assert "ot_pat_wrong" not in str(info.value)


@pytest.mark.parametrize(
    ("account", "reason"),
    [
        ({"scopes": ("messages:read",)}, "insufficient_scope"),
        ({"messaging_writes": False}, "feature_disabled"),
        ({"claimed": False}, "account_claim_required"),
    ],
)
async def test_403_account_reasons(
    server: FakeOpenTrain, no_wait: FakeTime, account: dict[str, object], reason: str
) -> None:
    """Scope, feature and claim problems raise PermissionDeniedError with the reason, once."""
    server.add_token("ot_pat_limited", **account)  # type: ignore[arg-type]
    conv = server.add_conversation()
    async with make_client(
        server, token="ot_pat_limited", clock=no_wait.clock, sleep=no_wait.sleep
    ) as client:
        with pytest.raises(PermissionDeniedError) as info:
            await client.send_message(conv, "hi")
    assert info.value.reason == reason
    if reason == "account_claim_required":
        assert info.value.claim_url
    assert len(server.sends) == 1
    assert no_wait.sleeps == []


async def test_403_not_participant_and_policy(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Not being a participant and a content-policy block are terminal 403s with details."""
    outsider = server.add_conversation(participant=False)
    with pytest.raises(PermissionDeniedError) as info:
        await client.send_message(outsider, "hi")
    assert info.value.reason == "not_participant"
    conv = server.add_conversation()
    server.block_content("forbidden word", policy="spam")
    with pytest.raises(PermissionDeniedError) as info:
        await client.send_message(conv, "a forbidden word here")
    assert info.value.reason == "message_policy_blocked"
    assert info.value.policy == "spam"
    assert len(server.sends) == 2


async def test_404_unknown_conversation(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """An unknown conversation raises NotFoundError after one request."""
    with pytest.raises(NotFoundError):
        await client.send_message("conv_missing", "hi")
    assert len(server.sends) == 1


@pytest.mark.parametrize(
    "reason", ["read_only_conversation", "employer_first_message_required", "message_blocked"]
)
async def test_409_conflicts_are_terminal(
    server: FakeOpenTrain, client: OpenTrainClient, no_wait: FakeTime, reason: str
) -> None:
    """Each documented 409 reason raises ConflictError with .reason, without a retry."""
    conv = server.add_conversation(send_block=reason)
    with pytest.raises(ConflictError) as info:
        await client.send_message(conv, "hi")
    assert info.value.reason == reason
    assert len(server.sends) == 1
    assert no_wait.sleeps == []


@pytest.mark.parametrize(
    ("hint", "header", "in_body", "expected_min"),
    [(2, None, True, 2.0), (0.25, None, True, 0.25), (1.0, "3", False, 3.0)],
)
async def test_429_waits_the_hint_then_succeeds(
    server: FakeOpenTrain,
    no_wait: FakeTime,
    hint: float,
    header: str | None,
    in_body: bool,
    expected_min: float,
) -> None:
    """A 429 is retried after at least its hint (body, else Retry-After) and then succeeds."""
    conv = server.add_conversation()
    server.throttle_next(2, retry_after=hint, in_body=in_body, header=header)
    events: list[RetryEvent] = []
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, on_retry=events.append
    ) as client:
        message = await client.send_message(conv, "hi")
    assert message.content == "hi"
    assert len(server.sends) == 3
    retry_waits = [e.wait for e in events]
    assert len(retry_waits) == 2
    assert all(expected_min <= w <= expected_min * 1.1 + 0.01 for w in retry_waits)
    assert [e.attempt for e in events] == [1, 2]
    assert all(e.reason == "rate_limited" and e.request_id for e in events)
    assert client.stats.rate_limited == 2
    assert client.stats.retries == 2


async def test_429_hint_above_cap_raises_at_once(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """A hint longer than max_retry_after is not waited out: RateLimitError immediately."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=600)
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_retry_after=120
    ) as client:
        with pytest.raises(RateLimitError) as info:
            await client.send_message(conv, "hi")
    assert info.value.retry_after == 600
    assert len(server.sends) == 1
    assert all(w < 1 for w in no_wait.sleeps)


async def test_429_retry_budget_is_bounded(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """After max_retries the last RateLimitError is raised; max_retries+1 requests in all."""
    conv = server.add_conversation()
    server.throttle_next(10, retry_after=0.5)
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_retries=3
    ) as client:
        with pytest.raises(RateLimitError):
            await client.send_message(conv, "hi")
    assert len(server.sends) == 4


async def test_429_without_any_hint_backs_off_exponentially(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """With no hint at all, waits grow exponentially."""
    conv = server.add_conversation()
    server.throttle_next(3, in_body=False)
    events: list[RetryEvent] = []
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, on_retry=events.append
    ) as client:
        await client.send_message(conv, "hi")
    waits = [e.wait for e in events]
    assert waits[0] < waits[2]
    assert 0.25 <= waits[0] <= 0.5
    assert 1.0 <= waits[2] <= 2.0


async def test_backoff_does_not_hold_the_semaphore(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """While a 429 is waited out, no concurrency slot is held."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=1)
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_concurrency=1
    ) as client:
        held: list[bool] = []
        no_wait.on_sleep.append(lambda _: held.append(client.in_flight > 0))
        await client.send_message(conv, "hi")
    assert held
    assert not any(held)


async def test_semaphore_bounds_requests_on_the_wire(server: FakeOpenTrain) -> None:
    """With max_concurrency=3 the server never sees more than 3 requests at once."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=0.02)
    async with make_client(server, max_concurrency=3) as client:
        await asyncio.gather(*(client.send_message(conv, f"m{i}") for i in range(12)))
    assert server.peak_in_flight == 3
    assert len(server.messages(conv)) == 12


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_retried_then_raised(no_wait: FakeTime) -> None:
    """A refused connection never reached the server: retried with backoff, then raised."""
    events: list[RetryEvent] = []
    async with OpenTrainClient(
        "ot_pat_x",
        f"http://127.0.0.1:{closed_port()}",
        clock=no_wait.clock,
        sleep=no_wait.sleep,
        max_retries=2,
        on_retry=events.append,
    ) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.send_message("conv_1", "hi")
    assert info.value.reached_server is False
    assert [e.reason for e in events] == ["connection_failed", "connection_failed"]
    assert events[0].wait <= events[1].wait * 2


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        (Fault.RESET_AFTER_COMMIT, APIConnectionError),
        (Fault.BAD_GATEWAY_AFTER_COMMIT, InternalServerError),
        (Fault.RESET_BEFORE_COMMIT, APIConnectionError),
        (Fault.BAD_GATEWAY_BEFORE_COMMIT, InternalServerError),
    ],
)
async def test_unknown_outcome_is_not_resent(
    server: FakeOpenTrain, client: OpenTrainClient, fault: Fault, cause: type[Exception]
) -> None:
    """A reset or proxy 5xx on a send raises DeliveryUnknownError after exactly one request."""
    conv = server.add_conversation()
    server.inject_fault(fault, count=1)
    with pytest.raises(DeliveryUnknownError, match="may or may not have been delivered") as info:
        await client.send_message(conv, "hi")
    assert isinstance(info.value.__cause__, cause)
    assert info.value.conversation_id == conv
    assert len(server.sends) == 1


async def test_html_502_from_a_proxy_is_typed(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A non-JSON 502 page becomes InternalServerError inside DeliveryUnknownError."""
    conv = server.add_conversation()
    server.fail_next(1, status=502, body="<html>502 Bad Gateway</html>", content_type="text/html")
    with pytest.raises(DeliveryUnknownError) as info:
        await client.send_message(conv, "hi")
    assert isinstance(info.value.__cause__, InternalServerError)
    assert info.value.__cause__.status == 502


async def test_timeout_after_commit_is_unknown(server: FakeOpenTrain) -> None:
    """A timeout after the request was written is an unknown outcome, not a resend."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    async with make_client(server, timeout=0.2) as client:
        with pytest.raises(DeliveryUnknownError) as info:
            await client.send_message(conv, "hi")
    assert isinstance(info.value.__cause__, APITimeoutError)
    assert len(server.sends) == 1


async def test_module_level_send_resolves_from_env(
    server: FakeOpenTrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """opentrain_async.send_message reads OT_API_TOKEN and OT_API_BASE_URL."""
    conv = server.add_conversation()
    monkeypatch.setenv("OT_API_TOKEN", server.token)
    monkeypatch.setenv("OT_API_BASE_URL", server.base_url)
    message = await opentrain_async.send_message(conv, "one-shot")
    assert message.content == "one-shot"


async def test_module_level_send_validates_before_anything(server: FakeOpenTrain) -> None:
    """Invalid input to the one-shot fails before a client or request exists."""
    with pytest.raises(InvalidRequestError):
        await opentrain_async.send_message("", "hi")
    assert server.requests == []


async def test_user_session_is_left_open(server: FakeOpenTrain) -> None:
    """A session passed in by the user is used and not closed by the client."""
    conv = server.add_conversation()
    async with aiohttp.ClientSession() as session:
        async with make_client(server, session=session) as client:
            await client.send_message(conv, "hi")
        assert not session.closed


async def test_client_works_without_context_manager(server: FakeOpenTrain) -> None:
    """A client used without `async with` creates its session lazily and sends; after
    close() (twice is fine) it refuses to send, saying it was closed."""
    conv = server.add_conversation()
    client = make_client(server)
    try:
        sent = await client.send_message(conv, "hi")
    finally:
        await client.close()
    await client.close()
    assert [m["id"] for m in server.messages(conv)] == [sent.id]
    with pytest.raises(ConfigurationError, match="was closed"):
        await client.send_message(conv, "again")
    assert len(server.messages(conv)) == 1


async def test_secrets_never_leak(
    server: FakeOpenTrain, caplog: pytest.LogCaptureFixture, no_wait: FakeTime
) -> None:
    """The token appears in no repr, log record or exception; content is not logged by default."""
    conv = server.add_conversation(send_block="read_only_conversation")
    ok_conv = server.add_conversation()
    server.throttle_next(1, retry_after=0.1)
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    texts: list[str] = []
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        texts.append(repr(client))
        texts.append(repr(client._settings))
        await client.send_message(ok_conv, "secret content 42")
        try:
            await client.send_message(conv, "hi")
        except ConflictError as exc:
            texts.extend([str(exc), repr(exc)])
    texts.extend(r.getMessage() for r in caplog.records)
    assert any("retrying" in t for t in texts)
    assert not any(server.token in t for t in texts)
    assert not any("secret content 42" in t for t in texts)


async def test_content_is_logged_only_when_asked(
    server: FakeOpenTrain, caplog: pytest.LogCaptureFixture
) -> None:
    """log_content=True logs message content at DEBUG (and still never the token)."""
    conv = server.add_conversation()
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    async with make_client(server, log_content=True) as client:
        await client.send_message(conv, "visible content")
    messages = [r.getMessage() for r in caplog.records]
    assert any("visible content" in m for m in messages)
    assert not any(server.token in m for m in messages)
