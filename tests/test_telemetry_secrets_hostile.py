"""Secrets and content against every place telemetry writes: span names, attributes and
events, metric attributes, and request log records (their ``extra=`` fields too), with a
token full of URL syntax and a server that echoes it in forms other than verbatim."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers

SECRET = "sk-a/b@c%d#e+f?g=h&i 0123456789"

_EXTRA = ("method", "path", "status", "duration_ms", "request_id", "attempt")


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


def _everything(otel: Telemetry, records: list[logging.LogRecord]) -> str:
    """Every span name, attribute and event, metric and exemplar attribute and log
    field, as text."""
    values: list[Any] = list(otel.attribute_values())
    for record in records:
        values += [record.getMessage(), *(getattr(record, k, None) for k in _EXTRA)]
    return "\n".join(json.dumps(v) if not isinstance(v, str) else v for v in values)


@pytest.mark.parametrize(
    "echo",
    [quote(SECRET, safe=""), quote(SECRET), json.dumps(SECRET)[1:-1].replace("/", "\\/")],
    ids=["percent-encoded", "percent-encoded-path", "json-escaped"],
)
async def test_a_token_echoed_encoded_in_the_request_id_is_masked(
    otel: Telemetry, caplog: pytest.LogCaptureFixture, echo: str
) -> None:
    """A proxy echoes the Authorization header URL- or JSON-encoded in X-Request-Id: the
    span attribute and the log record get it masked, as they do a verbatim echo."""
    async with FakeOpenTrain(token=SECRET) as server:
        conv = server.add_conversation()
        server.script("POST /messages", status=400, error="no", headers={"X-Request-Id": echo})
        with caplog.at_level(logging.DEBUG, logger="opentrain_async"):
            async with make_client(server, max_retries=0) as client:
                with pytest.raises(Exception, match="no"):
                    await client.send_message(conv, "secret content")
    text = _everything(otel, caplog.records)
    assert echo not in text
    assert SECRET not in text
    assert "secret content" not in text


async def test_a_query_string_in_a_raw_request_path_stays_out_of_attributes(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """``client.request("GET", "/messages?conversationId=...")``: the span name, the
    ``url.template`` attributes and the metrics carry the route, never the query string
    (nor the conversation id in it)."""
    conv = server.add_conversation()
    async with make_client(server) as client:
        status, _ = await client.request("GET", f"/messages?conversationId={conv}&limit=5")
    assert status == 200
    text = _everything(otel, [])
    assert conv not in text
    assert "?" not in text
    assert "GET /messages" in {s.name for s in otel.spans()}
    assert otel.total("opentrain.requests", **{"url.template": "/messages"}) == 1


async def test_a_rough_job_leaves_no_content_and_no_conversation_id(
    otel: Telemetry, caplog: pytest.LogCaptureFixture, no_wait: FakeTime
) -> None:
    """A job that meets 429s, a 500 (read-back), a 400 that blocks its conversation, and
    a reply: no content anywhere in telemetry or the request log records, and no
    conversation id in telemetry without the opt-in."""
    async with FakeOpenTrain(token=SECRET) as server:
        convs = [server.add_conversation() for _ in range(3)]
        server.throttle_next(2, retry_after=0.2)
        server.fail_next(1, status=500)
        server.script("POST /messages", status=400, error="no", times=1)
        items = [(c, f"private-{i}-{c}") for i in range(4) for c in convs]
        with caplog.at_level(logging.DEBUG, logger="opentrain_async"):
            async with make_client(
                server, max_concurrency=2, clock=no_wait.clock, sleep=no_wait.sleep
            ) as client:
                report = await client.send_all(items)
                incoming_id = server.add_incoming_message(convs[0], "private-hi")["id"]
                incoming = [m async for m in client.iter_messages(convs[0])]
                (message,) = (m for m in incoming if m.id == incoming_id)
                await client.reply(message, "private-answer")
        stats = server.stats()
    # Every request the server saw, read-backs and the reply's reads included, is timed once.
    assert otel.total("http.client.request.duration") == stats["requests"]
    assert otel.total("opentrain.rate_limited") == stats["rate_limited"]
    assert otel.total("opentrain.outcomes") == len(items) + 1
    assert report.counts["blocked_by_earlier_failure"] > 0, report.counts
    telemetry = _everything(otel, [])
    assert "private" not in _everything(otel, caplog.records)
    assert not any(c in telemetry for c in convs)
    assert SECRET not in _everything(otel, caplog.records)


async def test_exceptions_an_application_span_records_hold_no_content(
    otel: Telemetry, no_wait: FakeTime
) -> None:
    """An application wraps each send in its own span, which records the exception
    (message, type and stack, with its causes) when the send fails: invalid input, a
    400, a 500 without read-back, a dropped connection.  No content, no token."""
    from opentelemetry import trace

    tracer = trace.get_tracer("app")
    async with FakeOpenTrain(token=SECRET) as server:
        conv = server.add_conversation()
        server.script("POST /messages", status=400, error="no")
        server.fail_next(1, status=500)
        server.script("POST /messages", drop=True)
        async with make_client(
            server, max_retries=0, clock=no_wait.clock, sleep=no_wait.sleep
        ) as client:
            for content in ("private-400", "private-500", "private-drop", "x" * 10_001):
                with contextlib.suppress(Exception), tracer.start_as_current_span("app.send"):
                    await client.send_message(conv, content)
    recorded = [
        str(event.attributes)
        for span in otel.spans()
        if span.name == "app.send"
        for event in span.events
        if event.name == "exception"
    ]
    assert len(recorded) == 4
    text = "\n".join(recorded)
    assert "private" not in text
    assert "x" * 100 not in text
    assert SECRET not in text
