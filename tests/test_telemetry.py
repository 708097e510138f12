"""OpenTelemetry metrics and traces of a job, read back with the SDK's in-memory reader and
exporter installed as the global providers (as an application would set them up)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from opentrain_async import OpenTrainClient, _telemetry
from opentrain_async.testing import FakeOpenTrain, FakeTime, TokenBucket

from .conftest import make_client
from .telemetry_helpers import Telemetry, run_python, use_global_providers

SECRET = "sk-telemetry-secret-token-0123456789"


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


def _clients(telemetry: Telemetry) -> set[str]:
    """The ``opentrain.client`` numbers of the live clients."""
    _telemetry._current_metrics()  # the gauges, even before this provider saw a request
    return {p.attributes["opentrain.client"] for p in telemetry.points("opentrain.pacer.paused")}


async def test_a_bulk_job_reports_what_the_server_saw(otel: Telemetry) -> None:
    """300 messages into a 100/s bucket: the outcome counter sums to 300, the 429 counter
    and the duration histogram agree with the server's own counts, the learned-rate
    gauge is near 100/s, each message has one span with its HTTP attempts as children,
    and no attribute holds the token or any content."""
    time = FakeTime()
    gc.collect()  # clients of earlier tests
    others = _clients(otel)  # any still alive have gauges too
    async with FakeOpenTrain(token=SECRET, clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(TokenBucket(rate=100, burst=5))
        convs = [server.add_conversation() for _ in range(4)]
        items = [(convs[i % 4], f"content-{i}-private") for i in range(300)]
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, max_concurrency=16
        ) as client:
            report = await client.send_all(items)
            (mine,) = _clients(otel) - others
            limit = [
                p
                for p in otel.points("opentrain.pacer.limit")
                if p.attributes["opentrain.client"] == mine
            ]
        stats = server.stats()

    assert report.sent == 300
    assert otel.total("opentrain.outcomes") == 300
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "sent"}) == 300
    assert stats["rate_limited"] > 0  # the bucket was found, not stated
    assert otel.total("opentrain.rate_limited") == stats["rate_limited"]
    assert otel.total("http.client.request.duration") == stats["requests"]
    assert (
        otel.total("opentrain.requests", **{"http.response.status_code": 429})
        == stats["rate_limited"]
    )
    assert otel.total("opentrain.requests") == stats["requests"]
    assert len(limit) == 1
    assert 80 <= limit[0].value <= 120, limit[0].value

    spans = otel.spans()
    messages = [s for s in spans if s.name == "opentrain.message.send"]
    http = [s for s in spans if s.name == "POST /messages"]
    assert len(messages) == 300
    assert len(http) == stats["requests"]
    ids = {m.context.span_id for m in messages}
    assert all(h.parent is not None and h.parent.span_id in ids for h in http)
    assert all(m.parent is None for m in messages)
    assert {m.attributes["opentrain.outcome"] for m in messages} == {"sent"}
    assert http[0].attributes["http.request.method"] == "POST"
    assert http[0].attributes["server.address"] == "127.0.0.1"
    assert {h.attributes["http.response.status_code"] for h in http} == {201, 429}
    throttled = [h for h in http if h.attributes["http.response.status_code"] == 429]
    assert all(h.attributes["error.type"] == "429" for h in throttled)
    events = {e.name for m in messages for e in m.events}
    assert "opentrain.pause.start" in events
    assert "opentrain.pause.end" in events

    text = "\n".join(otel.attribute_values())
    assert SECRET not in text
    assert "private" not in text
    assert not any(conv in text for conv in convs)  # not without the opt-in


async def test_conversation_ids_only_when_asked(
    otel: Telemetry, monkeypatch: pytest.MonkeyPatch, server: FakeOpenTrain
) -> None:
    """Message spans carry the conversation id only with the opt-in variable set."""
    conv = server.add_conversation()
    async with make_client(server) as client:
        await client.send_message(conv, "hello")
        monkeypatch.setenv(_telemetry.CONVERSATION_IDS_ENV_VAR, "1")
        await client.send_message(conv, "again")
    first, second = (s for s in otel.spans() if s.name == "opentrain.message.send")
    assert "opentrain.conversation.id" not in first.attributes
    assert second.attributes["opentrain.conversation.id"] == conv


async def test_a_server_echoing_the_token_never_reaches_an_attribute(otel: Telemetry) -> None:
    """A lying server puts the token in its request id: the span and log record get it
    masked."""
    async with FakeOpenTrain(token=SECRET) as server:
        conv = server.add_conversation()
        server.script("POST /messages", status=400, error="no", headers={"X-Request-Id": SECRET})
        async with make_client(server, max_retries=0) as client:
            with pytest.raises(Exception, match="no"):
                await client.send_message(conv, "secret content")
    text = "\n".join(otel.attribute_values())
    assert SECRET not in text
    assert "secret content" not in text
    (http,) = (s for s in otel.spans() if s.name == "POST /messages")
    assert http.attributes["http.response.header.x-request-id"] == ("***",)
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "bad_request"}) == 1


async def test_single_send_and_retries_are_one_span_with_children(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """send_message after two 429s: one message span, three HTTP children (the last two
    with their resend count), two retries counted; after a 500, the read-back's GETs
    are the message's children too, and the read-back is counted."""
    conv = server.add_conversation()
    server.throttle_next(2, retry_after=0.25)
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        await client.send_message(conv, "after 429s")
        server.fail_next(1, status=500)
        await client.send_message(conv, "after a 500", reconcile=True)
    spans = otel.spans()
    first, second = (s for s in spans if s.name == "opentrain.message.send")
    children = [s for s in spans if s.parent is not None]
    assert {c.parent.span_id for c in children} == {  # type: ignore[union-attr]
        first.context.span_id,
        second.context.span_id,
    }
    of_first = [s for s in children if s.parent.span_id == first.context.span_id]  # type: ignore[union-attr]
    assert [p.attributes.get("http.request.resend_count") for p in of_first] == [None, 1, 2]
    assert otel.total("opentrain.retries") == 2
    of_second = [s.name for s in children if s.parent.span_id == second.context.span_id]  # type: ignore[union-attr]
    assert of_second[0] == "POST /messages"
    assert "GET /messages" in of_second  # the read-back
    assert otel.total("opentrain.read_backs", **{"opentrain.read_back.result": "not_found"}) == 1
    assert "opentrain.read_back" in {e.name for e in second.events}
    assert first.attributes["opentrain.outcome"] == "sent"
    assert second.attributes["opentrain.outcome"] == "sent"


async def test_request_log_records_carry_their_fields(
    server: FakeOpenTrain, caplog: pytest.LogCaptureFixture, no_wait: FakeTime
) -> None:
    """Without any provider, each request's DEBUG record carries method, path, status,
    duration_ms, request_id and attempt as attributes (the retry's attempt is 2)."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=0.25)
    with caplog.at_level(logging.DEBUG, logger="opentrain_async"):
        async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
            await client.send_message(conv, "logged")
    records = [r for r in caplog.records if hasattr(r, "duration_ms")]
    assert [(r.method, r.path, r.status, r.attempt) for r in records] == [  # type: ignore[attr-defined]
        ("POST", "/messages", 429, 1),
        ("POST", "/messages", 201, 2),
    ]
    assert all(isinstance(r.duration_ms, float) for r in records)  # type: ignore[attr-defined]
    assert all(r.request_id for r in records)  # type: ignore[attr-defined]
    assert "logged" not in caplog.text


async def test_a_long_pause_is_never_silent(
    otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 whose hint is above max_retry_after fails that send and pauses the client:
    one WARNING says why and until when (three 429s of one burst: one pause), describe()
    says paused, the gauges show it."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(3)]  # one burst: no order to keep
        server.throttle_next(3, retry_after=3600)
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, max_retry_after=30
        ) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                report = await client.send_all([(c, "too soon") for c in convs])
            described = client.pacer.describe()
            paused = otel.total("opentrain.pacer.paused")
            remaining = otel.total("opentrain.pacer.pause.remaining")
            time.advance(31)
            after = client.pacer.describe()
            paused_after = otel.total("opentrain.pacer.paused")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert "429" in text
    assert "until" in text
    assert "UTC" in text
    assert described.startswith("paused 30s more (429)"), described
    assert paused == 1
    assert 29 <= remaining <= 30
    assert not after.startswith("paused")
    assert paused_after == 0
    assert otel.total("opentrain.pacer.pauses") == 1
    assert report.counts["rate_limited"] == 3
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "rate_limited"}) == 3


def test_nothing_is_built_without_a_provider() -> None:
    """With no provider set up, the hooks return before building a span or a record."""
    assert _telemetry.message_start() is None
    assert _telemetry.request_start("POST", "/messages", "h", 1) is None
    _telemetry.message_end(None, "sent")
    _telemetry.request_end(None, 200, None)


@pytest.mark.process
async def test_without_opentelemetry_installed(server: FakeOpenTrain) -> None:
    """With opentelemetry not importable at all, the SDK imports and sends as before."""
    conv = server.add_conversation()
    code = f"""
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the package were not installed
from opentrain_async import OpenTrainClient, _telemetry
assert _telemetry._otel_metrics is None
async def main():
    async with OpenTrainClient({server.token!r}, {server.base_url!r}) as client:
        report = await client.send_all([({conv!r}, "a"), ({conv!r}, "b")])
    assert report.sent == 2, report
asyncio.run(main())
"""

    await run_python(code)
    assert len(server.messages(conv)) == 2


def test_client_type_is_unchanged() -> None:
    """The hooks add no public attribute to the client."""
    assert not hasattr(OpenTrainClient, "telemetry")


async def test_gauges_follow_live_clients(otel: Telemetry, server: FakeOpenTrain) -> None:
    """Each live client has its own gauges (``opentrain.client``); a closed and dropped
    client's number is reused, so a client per message keeps one series."""
    gc.collect()  # clients of earlier tests
    others = _clients(otel)
    async with make_client(server) as first, make_client(server) as second:
        assert first is not second
        ours = _clients(otel) - others
        assert len(ours) == 2
    del first, second
    gc.collect()
    for _ in range(3):
        async with make_client(server):
            pass
        gc.collect()
    async with make_client(server):
        now = _clients(otel) - others
    assert len(now) == 1
    assert now <= ours


async def test_a_closed_client_has_no_gauges_while_still_referenced(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """A client paused by a long 429 and then closed, but still referenced (a cycle, a
    traceback, a bot's attribute), reports nothing: its gauges end at ``close``, not at
    garbage collection, so a dashboard's "paused" is the open clients'. Entering it
    again brings them back under one number."""
    others = _clients(otel)
    server.throttle_next(1, retry_after=3600)
    client = make_client(server, max_retry_after=30)
    async with client:
        await client.send_all([(server.add_conversation(), "too soon")])
        (mine,) = _clients(otel) - others
        assert otel.total("opentrain.pacer.paused", **{"opentrain.client": mine}) == 1
    assert _clients(otel) - others == set()
    assert otel.total("opentrain.pacer.paused", **{"opentrain.client": mine}) == 0
    async with client:
        assert _clients(otel) - others == {mine}
        async with client:  # entered twice: still one series
            assert _clients(otel) - others == {mine}
    assert _clients(otel) - others == set()


async def test_unsampled_messages_cost_no_http_spans(
    otel: Telemetry, server: FakeOpenTrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a sampler that keeps no trace, nothing is exported and no HTTP span is even
    started under the unsampled message span; the metrics still count every outcome."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(otel.exporter))
    # Put back by hand, not by monkeypatch: its undo runs after the `otel` fixture's and
    # would leave that fixture's shut-down provider as the global one for later tests.
    saved, trace._TRACER_PROVIDER = trace._TRACER_PROVIDER, provider
    try:
        started: list[str] = []
        tracer = provider.get_tracer("spy")
        real = type(tracer).start_span

        def spy(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            started.append(name)
            return real(self, name, *args, **kwargs)

        monkeypatch.setattr(type(tracer), "start_span", spy)
        conv = server.add_conversation()
        async with make_client(server) as client:
            report = await client.send_all([(conv, f"unsampled {i}") for i in range(5)])
    finally:
        trace._TRACER_PROVIDER = saved
    assert report.sent == 5
    assert started == ["opentrain.message.send"] * 5
    assert otel.spans() == ()
    assert otel.total("opentrain.outcomes") == 5
