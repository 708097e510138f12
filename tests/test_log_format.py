"""One log format for ``OPENTRAIN_LOG`` and the CLI; JSON lines with every field a key."""

from __future__ import annotations

import json
import logging

import pytest

from opentrain_async._logs import (
    TEXT_FORMAT,
    JsonFormatter,
    SafeFormatter,
    configure_logging_from_env,
    formatter,
    log_format_from_env,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("opentrain_async", logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_plain_fields_and_escape_what_a_server_wrote() -> None:
    """Extras that are plain JSON values become keys; objects (a RetryEvent holding the
    error) are left out; a request id with a newline and an escape sequence stays on one
    line, escaped."""
    line = JsonFormatter().format(
        _record(
            "POST /messages -> 201",
            method="POST",
            status=201,
            duration_ms=1.5,
            request_id="evil\n\x1b[2J",
            opentrain_retry=object(),
        )
    )
    assert "\n" not in line
    assert "\x1b" not in line
    entry = json.loads(line)
    assert entry["method"] == "POST"
    assert entry["status"] == 201
    assert entry["duration_ms"] == 1.5
    assert entry["request_id"] == "evil\n\x1b[2J"
    assert "opentrain_retry" not in entry
    assert entry["level"] == "INFO"
    assert entry["logger"] == "opentrain_async"
    assert entry["time"].endswith("Z")


def test_the_environment_chooses_the_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """``OPENTRAIN_LOG_FORMAT=json`` picks JSON; anything else (or nothing) the text
    format, which is the CLI's."""
    assert log_format_from_env({"OPENTRAIN_LOG_FORMAT": "JSON"}) == "json"
    assert log_format_from_env({"OPENTRAIN_LOG_FORMAT": "yaml"}) == "text"
    assert log_format_from_env({}) == "text"
    assert isinstance(formatter("json"), JsonFormatter)
    text = formatter("text")
    assert isinstance(text, SafeFormatter)
    assert text._fmt == TEXT_FORMAT
    logger = logging.getLogger("opentrain_async")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logger.level)
    configure_logging_from_env({"OPENTRAIN_LOG": "info", "OPENTRAIN_LOG_FORMAT": "json"})
    (handler,) = logger.handlers
    assert isinstance(handler.formatter, JsonFormatter)


async def test_retry_records_carry_the_request_fields(caplog: pytest.LogCaptureFixture) -> None:
    """The INFO record of a retry carries method, path, status, request_id and attempt
    as attributes, like each request's DEBUG record."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=0.5)
        with caplog.at_level(logging.INFO, logger="opentrain_async"):
            async with make_client(server, clock=time.clock, sleep=time.sleep) as client:
                await client.send_message(conv, "retried")
        rid = server.sends[0].request_id
    (retry,) = [r for r in caplog.records if hasattr(r, "retry_in_s")]
    fields = ("method", "path", "status", "request_id", "attempt")
    assert tuple(getattr(retry, f) for f in fields) == ("POST", "/messages", 429, rid, 1)
