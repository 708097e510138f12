"""Secrets and content against every place telemetry writes: span names, attributes and
events, metric attributes, and request log records (their ``extra=`` fields too), with a
token full of URL syntax and a server that echoes it in forms other than verbatim."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from opentrain_async.testing import FakeOpenTrain

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers

SECRET = "sk-a/b@c%d#e+f?g=h&i 0123456789"

_EXTRA = ("method", "path", "status", "duration_ms", "request_id", "attempt")


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


def _everything(otel: Telemetry, records: list[logging.LogRecord]) -> str:
    """Every span name, attribute and event, metric attribute and log field, as text."""
    values: list[Any] = []
    for span in otel.spans():
        values += [span.name, *span.attributes.values()]
        for event in span.events:
            values += [event.name, *event.attributes.values()]
    data = otel.reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values += list(point.attributes.values())
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
