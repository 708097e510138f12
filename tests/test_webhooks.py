"""Webhook signatures (good, bad, stale, tampered, malformed) and the aiohttp handler."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from opentrain_async import (
    Event,
    OpenTrainError,
    WebhookHandler,
    WebhookVerificationError,
    parse_webhook_event,
    sign_webhook_payload,
    verify_webhook_signature,
    webhook_handler,
)

SECRET = "whsec_test_secret"
NOW = 1_781_000_000
EVENT: dict[str, Any] = {
    "id": "1042",
    "type": "message.received",
    "apiVersion": "v1",
    "createdAt": "2026-06-12T09:15:00.000Z",
    "resourceId": "msg_1",
    "jobId": None,
    "data": {"conversationId": "conv_1", "messageId": "msg_1"},
}
BODY = json.dumps(EVENT).encode()


def test_good_signature_verifies_and_returns_timestamp() -> None:
    """A signature made with the secret over "<t>.<body>" verifies."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    assert verify_webhook_signature(SECRET, BODY, header, now=NOW + 10) == NOW


def test_signature_matches_the_documented_construction() -> None:
    """v1 is hex HMAC-SHA256(secret, "<t>.<raw body>"), computed independently."""
    digest = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert verify_webhook_signature(SECRET, BODY, f"t={NOW},v1={digest}", now=NOW) == NOW
    assert verify_webhook_signature(SECRET.encode(), BODY, f"t={NOW}, v1={digest}", now=NOW)


def test_wrong_secret_is_a_mismatch() -> None:
    """A signature made with another secret is rejected as a mismatch."""
    header = sign_webhook_payload("another-secret", BODY, timestamp=NOW)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, header, now=NOW)
    assert info.value.reason == "mismatch"
    assert isinstance(info.value, OpenTrainError)


def test_tampered_body_is_a_mismatch() -> None:
    """Changing one byte of the body after signing breaks the signature."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    tampered = BODY.replace(b"conv_1", b"conv_2")
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, tampered, header, now=NOW)
    assert info.value.reason == "mismatch"


def test_tampered_timestamp_is_a_mismatch() -> None:
    """Replaying a signature with a fresher timestamp fails: t is part of what is signed."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    forged = header.replace(f"t={NOW}", f"t={NOW + 60}")
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, forged, now=NOW + 60)
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_stale_signature_outside_tolerance(offset: int) -> None:
    """A timestamp more than 5 minutes away (past or future) is stale."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, header, now=NOW + offset)
    assert info.value.reason == "stale"


def test_tolerance_is_configurable() -> None:
    """A custom tolerance widens (or narrows) the accepted window."""
    header = sign_webhook_payload(SECRET, BODY, timestamp=NOW)
    assert verify_webhook_signature(SECRET, BODY, header, now=NOW + 500, tolerance=600) == NOW
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(SECRET, BODY, header, now=NOW + 5, tolerance=1)


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    """No signature header at all is reported as missing."""
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, header, now=NOW)
    assert info.value.reason == "missing"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "v1=abcdef",
        f"t={NOW}",
        f"t=abc,v1={'0' * 64}",
        f"t=\u00b2,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={NOW},v0={'0' * 64}",
    ],
)
def test_malformed_headers(header: str) -> None:
    """Headers without a numeric t or a v1 entry are malformed, not a crash."""
    with pytest.raises(WebhookVerificationError) as info:
        verify_webhook_signature(SECRET, BODY, header, now=NOW)
    assert info.value.reason == "malformed"


def test_non_hex_or_non_ascii_signature_is_a_mismatch() -> None:
    """A v1 value that is not hex (even non-ASCII) fails cleanly as a mismatch."""
    for value in ("zz", "é" * 64):
        with pytest.raises(WebhookVerificationError) as info:
            verify_webhook_signature(SECRET, BODY, f"t={NOW},v1={value}", now=NOW)
        assert info.value.reason == "mismatch"


def test_any_of_several_v1_signatures_may_match() -> None:
    """During secret rotation one of several v1 entries matching is enough."""
    good = sign_webhook_payload(SECRET, BODY, timestamp=NOW).split("v1=")[1]
    header = f"t={NOW},v1={'0' * 64},v1={good}"
    assert verify_webhook_signature(SECRET, BODY, header, now=NOW) == NOW


def test_str_body_is_verified_as_utf8() -> None:
    """A str body is treated as its UTF-8 bytes."""
    text = BODY.decode()
    header = sign_webhook_payload(SECRET, text, timestamp=NOW)
    assert verify_webhook_signature(SECRET, BODY, header, now=NOW) == NOW


def test_empty_secret_is_refused() -> None:
    """An empty secret is a programming error, not a verification result."""
    with pytest.raises(ValueError, match="secret"):
        verify_webhook_signature("", BODY, "t=1,v1=00", now=NOW)
    with pytest.raises(TypeError):
        verify_webhook_signature(SECRET, 42, "t=1,v1=00", now=NOW)  # type: ignore[arg-type]


def test_parse_webhook_event_types_the_record() -> None:
    """A verified body parses into a typed Event with convenience ids."""
    event = parse_webhook_event(BODY)
    assert event.type == "message.received"
    assert (event.conversation_id, event.message_id) == ("conv_1", "msg_1")


def test_parse_webhook_event_passes_unknown_types_through() -> None:
    """An event type the SDK does not know is still an Event."""
    event = parse_webhook_event(json.dumps({"id": 7, "type": "robot.danced", "data": None}))
    assert (event.id, event.type, dict(event.data)) == ("7", "robot.danced", {})


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"type": "x"}', b'{"id":"1","type":"x","data":[1]}']
)
def test_parse_webhook_event_rejects_non_events(body: bytes) -> None:
    """A body that is not an event record raises invalid_payload."""
    with pytest.raises(WebhookVerificationError) as info:
        parse_webhook_event(body)
    assert info.value.reason == "invalid_payload"


# -- the aiohttp handler over loopback ---------------------------------------------------


class Received:
    """Collects events handed to user code and lets a test await the n-th one."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.events: list[Event] = []
        self.fail_first = fail_first
        self.changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("user code failed")
        self.events.append(event)
        self.changed.set()


AppFactory = Callable[..., Awaitable[tuple[TestClient[Any, Any], WebhookHandler]]]


@pytest.fixture
async def make_app() -> AsyncIterator[AppFactory]:
    """Serve a webhook handler on a loopback aiohttp test server; close it afterwards."""
    started: list[tuple[TestClient[Any, Any], WebhookHandler]] = []

    async def factory(
        on_event: Callable[[Event], Awaitable[Any]], **options: Any
    ) -> tuple[TestClient[Any, Any], WebhookHandler]:
        handler = WebhookHandler(SECRET, on_event, clock=lambda: float(NOW), **options)
        app = web.Application()
        handler.install(app, "/hooks/opentrain")
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        started.append((client, handler))
        return client, handler

    yield factory
    for client, _ in started:
        await client.close()  # the app's cleanup drains the handler


def _headers(body: bytes, delivery: str = "dlv_1", *, timestamp: int = NOW) -> dict[str, str]:
    return {
        "X-OpenTrain-Event": "message.received",
        "X-OpenTrain-Delivery": delivery,
        "X-OpenTrain-Signature": sign_webhook_payload(SECRET, body, timestamp=timestamp),
        "Content-Type": "application/json",
    }


async def test_handler_verifies_and_hands_typed_event_to_user_code(make_app: AppFactory) -> None:
    """A signed delivery is answered 2xx and user code receives the typed Event."""
    received = Received()
    client, handler = await make_app(received)
    response = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY))
    assert response.status == 202
    await asyncio.wait_for(received.changed.wait(), 5)
    assert [e.message_id for e in received.events] == ["msg_1"]
    assert handler.received == 1


async def test_handler_dedupes_redelivery_on_delivery_id(make_app: AppFactory) -> None:
    """A retried delivery (same X-OpenTrain-Delivery) is acknowledged but not dispatched again."""
    received = Received()
    client, handler = await make_app(received, background=False)
    body = json.dumps({**EVENT, "id": "1043"}).encode()  # another event
    first = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_9"))
    again = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_9"))
    other = await client.post("/hooks/opentrain", data=body, headers=_headers(body, "dlv_10"))
    assert (first.status, again.status, other.status) == (200, 200, 200)
    assert (await again.json())["duplicate"] is True
    assert len(received.events) == 2
    assert (handler.received, handler.duplicates) == (2, 1)


async def test_handler_dedupes_on_event_id_without_delivery_header(make_app: AppFactory) -> None:
    """Without a delivery header, the event id is the dedupe key."""
    received = Received()
    client, _ = await make_app(received, background=False)
    headers = _headers(BODY)
    del headers["X-OpenTrain-Delivery"]
    for _ in range(2):
        assert (await client.post("/hooks/opentrain", data=BODY, headers=headers)).status == 200
    assert len(received.events) == 1


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda h: h.pop("X-OpenTrain-Signature"), 401),
        (lambda h: h.update({"X-OpenTrain-Signature": "nonsense"}), 401),
        (
            lambda h: h.update(
                {"X-OpenTrain-Signature": sign_webhook_payload("x", BODY, timestamp=NOW)}
            ),
            401,
        ),
        (
            lambda h: h.update(
                {"X-OpenTrain-Signature": sign_webhook_payload(SECRET, BODY, timestamp=NOW - 3600)}
            ),
            401,
        ),
    ],
    ids=["missing", "malformed", "wrong-secret", "stale"],
)
async def test_handler_rejects_unverified_deliveries(
    make_app: AppFactory, mutate: Any, status: int
) -> None:
    """Deliveries that do not verify get 401 and never reach user code."""
    received = Received()
    client, handler = await make_app(received)
    headers = _headers(BODY)
    mutate(headers)
    response = await client.post("/hooks/opentrain", data=BODY, headers=headers)
    assert response.status == status
    assert received.events == []
    assert handler.rejected == 1


async def test_handler_rejected_delivery_does_not_poison_dedupe(make_app: AppFactory) -> None:
    """A forged delivery with a real delivery id does not block the genuine one."""
    received = Received()
    client, _handler = await make_app(received, background=False)
    forged = _headers(BODY, "dlv_x")
    forged["X-OpenTrain-Signature"] = sign_webhook_payload("attacker", BODY, timestamp=NOW)
    assert (await client.post("/hooks/opentrain", data=BODY, headers=forged)).status == 401
    genuine = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_x"))
    assert genuine.status == 200
    assert len(received.events) == 1


async def test_handler_answers_400_for_signed_non_event(make_app: AppFactory) -> None:
    """A correctly signed body that is not an event record gets 400."""
    received = Received()
    client, _handler = await make_app(received)
    body = b'{"hello": "world"}'
    response = await client.post("/hooks/opentrain", data=body, headers=_headers(body))
    assert response.status == 400
    assert received.events == []


async def test_handler_inline_failure_answers_500_and_allows_retry(make_app: AppFactory) -> None:
    """In inline mode a failing handler answers 500, and OpenTrain's retry is processed."""
    received = Received(fail_first=True)
    client, _handler = await make_app(received, background=False)
    first = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_r"))
    retry = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_r"))
    assert (first.status, retry.status) == (500, 200)
    assert len(received.events) == 1


async def test_handler_background_failure_is_logged_not_raised(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """In background mode a failing handler still answered 202; the failure is logged."""
    received = Received(fail_first=True)
    client, handler = await make_app(received)
    response = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY))
    assert response.status == 202
    await handler.drain()
    assert handler.pending == 0
    assert "webhook event handler failed" in caplog.text


def test_handler_rejects_bad_configuration() -> None:
    """An empty secret or a zero dedupe window is refused up front."""

    async def noop(event: Event) -> None:
        return None

    with pytest.raises(ValueError, match="secret"):
        webhook_handler("", noop)
    with pytest.raises(ValueError, match="dedupe_size"):
        webhook_handler(SECRET, noop, dedupe_size=0)


async def test_handler_dedupe_window_is_bounded(make_app: AppFactory) -> None:
    """Old delivery ids fall out of a bounded window (memory stays bounded)."""
    received = Received()
    client, _handler = await make_app(received, background=False, dedupe_size=1)
    for event_id in ("a", "b", "a"):
        body = json.dumps({**EVENT, "id": event_id}).encode()
        await client.post("/hooks/opentrain", data=body, headers=_headers(body, event_id))
    assert len(received.events) == 3


async def test_webhook_handler_factory_routes_with_plain_add_post() -> None:
    """webhook_handler() returns a coroutine handler aiohttp accepts without warnings."""
    received = Received()
    handle = webhook_handler(SECRET, received, background=False, clock=lambda: float(NOW))
    app = web.Application()
    app.router.add_post("/hook", handle)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/hook", data=BODY, headers=_headers(BODY))
        assert response.status == 200
    assert [e.id for e in received.events] == ["1042"]


async def test_retry_during_slow_handling_is_not_acknowledged(make_app: AppFactory) -> None:
    """A redelivery while the first is still being handled gets 409, so a failure is retried."""
    started, release = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []

    async def slow_then_fail(event: Event) -> None:
        started.set()
        await release.wait()
        outcomes.append(event.id)
        raise RuntimeError("user code failed")

    client, _ = await make_app(slow_then_fail, background=False)
    first = asyncio.ensure_future(
        client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_7"))
    )
    await started.wait()
    retry = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_7"))
    assert retry.status == 409
    release.set()
    assert (await first).status == 500
    again = await client.post("/hooks/opentrain", data=BODY, headers=_headers(BODY, "dlv_7"))
    assert again.status == 500  # not swallowed as a duplicate: user code saw it again
    assert len(outcomes) == 2
