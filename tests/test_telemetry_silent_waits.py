"""No silent waits: every way a client can come to hold its sends back for a long time
(a 429's body hint, a Retry-After header alone, a pause another process sharing the
pacing state learned) logs one WARNING, not none and not one per request."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.state import PacingFeedback, PacingTuning
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def _paused_by_another_client(time: FakeTime, hint: float) -> InMemoryPacingBackend:
    """A pacing state shared with another client that was just answered 429 with ``hint``
    (what its pacer reports to the shared backend, Redis in production)."""
    backend = InMemoryPacingBackend(clock=time.clock)
    await backend.report(
        PacingFeedback(throttled=True, throttled_at=time.clock(), retry_after=hint)
    )
    return backend


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name.startswith("opentrain_async")
    ]


async def test_a_pause_another_client_learned_is_not_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another client sharing the pacing state was told to wait 20.5 s: this client's
    sends wait out that pause too, and it says so once in its own log (another process's
    log is not this operator's)."""
    time = FakeTime()
    backend = await _paused_by_another_client(time, 20.5)
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(5)]
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, pacing_backend=backend
        ) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                report = await client.send_all([(c, "later") for c in convs])
    assert report.sent == 5
    assert time.slept >= 20  # the pause was waited out
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "until" in warnings[0]
    assert "UTC" in warnings[0]
    assert "sharing" in warnings[0]


async def test_a_whole_second_pause_another_client_learned_is_honoured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As above with a 60 s hint (a window's reset): this client waits it out too."""
    time = FakeTime()
    backend = await _paused_by_another_client(time, 60.0)
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        conv = server.add_conversation()
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, pacing_backend=backend
        ) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                await client.send_message(conv, "later")
    assert time.slept >= 55
    assert len(_warnings(caplog)) == 1


async def test_a_pause_from_a_retry_after_header_alone_warns_once_per_pause(
    otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """429s whose only hint is a ``Retry-After: 20`` header, answered to every request
    of several waves: one WARNING per pause begun, not one per 429 met."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(8)]
        server.throttle_next(8, in_body=False, header="20")
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, max_concurrency=8
        ) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                report = await client.send_all([(c, "burst") for c in convs])
    assert report.sent == 8
    assert server.stats()["rate_limited"] == 8
    warnings = _warnings(caplog)
    pauses = otel.total("opentrain.pacer.pauses")
    assert 1 <= len(warnings) == pauses < 8, warnings
    # Each pause is waited (a bulk send's hint of 3 s or more ends at the pacer's
    # pause, whose slots go up to its reservation horizon early).
    assert time.slept >= (20 - PacingTuning().horizon) * pauses
    assert all("20 s" in w for w in warnings)


async def test_a_single_send_told_to_wait_long_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``send_message`` after a 429 with a 20 s hint (under max_retry_after): the retry
    waits 20 s, and a WARNING says so."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=20)
        async with make_client(server, clock=time.clock, sleep=time.sleep) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                await client.send_message(conv, "single")
    assert time.slept >= 19
    assert len(_warnings(caplog)) == 1, _warnings(caplog)


async def test_a_pause_extended_far_past_what_was_announced_warns_again(
    otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """Four sends in flight are answered 429 with hints of 6, 9, 12 and 15 s: the client
    waits 15 s, so the WARNING that said "6 s, until ..." is not the last word; once the
    pause runs 5 s or more past the end announced it is announced again, not per 429."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(4)]
        for hint in (6, 9, 12, 15):  # 3 s more each time: a drip
            server.script(
                "POST /messages",
                status=429,
                error="Rate limit exceeded",
                details={"reason": "rate_limited", "retryAfterSeconds": hint},
            )
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, max_concurrency=4, max_retry_after=60
        ) as client:
            with caplog.at_level(logging.WARNING, logger="opentrain_async"):
                report = await client.send_all([(c, "burst") for c in convs])
    assert report.sent == 4
    assert time.elapsed >= 15
    announced = [r.pause_seconds for r in caplog.records if hasattr(r, "pause_seconds")]
    assert announced, "no warning at all"
    assert announced == [6, 12]  # 12 s: 6 s past the end announced; 9 and 15 s: 3 s
    assert otel.total("opentrain.pacer.pauses") == 1  # one pause, extended
