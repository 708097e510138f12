"""A ``Retry-After`` header given as an HTTP date (RFC 9110), as a CDN or proxy in front
of the API may send it, is a hint like seconds: counted from the answer's own ``Date``
(the server's clock, not ours), waited out, or raised at once beyond ``max_retry_after``.
Before, a date was no hint: a 429 saying "come back in an hour" was retried at once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from opentrain_async import OpenTrainClient, RateLimitError, RetryEvent
from opentrain_async._errors import error_from_response
from opentrain_async.testing import FakeTime

from .loopback import serving as on_loopback
from .loopback import stamp

TOKEN = "ot_pat_http_date"
NOW = "Mon, 07 Dec 2026 15:00:00 GMT"


class DatedOrigin:
    """Answers the first ``throttled`` sends 429 with ``Retry-After: <date>`` and a fixed
    ``Date``, then 201 describing the message sent."""

    def __init__(self, retry_at: str, throttled: int = 1) -> None:
        self.retry_at = retry_at
        self.throttled = throttled
        self.posts = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        sent = json.loads(await request.read())
        self.posts += 1
        if self.posts <= self.throttled:
            headers = {"Retry-After": self.retry_at, "Date": NOW}
            return web.Response(status=429, headers=headers)
        message = {
            "id": f"msg_{self.posts}",
            "conversationId": sent["conversationId"],
            "content": sent["content"],
            "senderUserId": "u_1",
            "createdAt": stamp(),
            "isFromViewer": True,
        }
        return web.json_response({"ok": True, "message": message}, status=201)


@contextlib.asynccontextmanager
async def serving(origin: DatedOrigin) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/public/v1/messages", origin.handle)
    async with on_loopback(app) as url:
        yield url


@pytest.mark.parametrize(
    ("retry_at", "expected"),
    [
        ("Mon, 07 Dec 2026 16:00:00 GMT", 3600.0),
        ("Mon, 07 Dec 2026 15:00:05 GMT", 5.0),
        ("Mon, 07 Dec 2026 14:59:00 GMT", None),  # already past: no hint
        ("Mon, 07 Dec 2026 15:00:05", None),  # no zone: not an HTTP date
        ("soon", None),
    ],
)
def test_an_http_date_is_read_from_the_answer_s_date(retry_at: str, expected: float | None) -> None:
    error = error_from_response(429, b"", {"Retry-After": retry_at, "Date": NOW})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == expected


def test_an_http_date_without_a_date_header_is_no_hint() -> None:
    """Without the server's ``Date`` our clock would have to be trusted: no hint."""
    error = error_from_response(429, b"", {"Retry-After": "Mon, 07 Dec 2026 16:00:00 GMT"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


async def test_a_date_an_hour_ahead_raises_at_once() -> None:
    """Beyond max_retry_after (120 s): RateLimitError at once, one request, no wait."""
    origin = DatedOrigin("Mon, 07 Dec 2026 16:00:00 GMT")
    t = FakeTime()
    async with (
        serving(origin) as url,
        OpenTrainClient(TOKEN, url, env={}, clock=t.clock, sleep=t.sleep) as client,
    ):
        with pytest.raises(RateLimitError) as info:
            await client.send_message("conv_1", "hi")
    assert info.value.retry_after == 3600.0
    assert origin.posts == 1
    assert all(wait < 1 for wait in t.sleeps)


async def test_a_date_seconds_ahead_is_waited_out() -> None:
    """A date 5 s after the answer's Date: the retry waits at least 5 s (virtual)."""
    origin = DatedOrigin("Mon, 07 Dec 2026 15:00:05 GMT")
    t = FakeTime()
    events: list[RetryEvent] = []
    async with (
        serving(origin) as url,
        OpenTrainClient(
            TOKEN, url, env={}, clock=t.clock, sleep=t.sleep, on_retry=events.append
        ) as client,
    ):
        message = await client.send_message("conv_1", "hi")
    assert message.id == "msg_2"
    assert origin.posts == 2
    assert [e.reason for e in events] == ["rate_limited"]
    assert events[0].wait >= 5.0
