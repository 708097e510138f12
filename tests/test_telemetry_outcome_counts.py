"""The outcome counter against every way a bulk input gets its outcome: sent, failed,
blocked behind an earlier failure of its conversation, left unsent when the loop over
``send_many`` ends, and cancelled mid-send.  It must never say fewer (or more) outcomes
than the caller got."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import pytest

from opentrain_async import InvalidRequestError
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .telemetry_helpers import Telemetry, use_global_providers
from .waiting import until


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


def _by_kind(otel: Telemetry) -> Counter[str]:
    return Counter(
        {
            p.attributes["opentrain.outcome"]: int(p.value)
            for p in otel.points("opentrain.outcomes")
            if p.value
        }
    )


async def test_inputs_blocked_behind_a_failure_are_counted(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """In order, a conversation's first input fails for good and its later inputs are
    blocked: the counter has one outcome per input, by the kinds the report has."""
    failing, fine = server.add_conversation(), server.add_conversation()
    server.script("POST /messages", status=400, error="no")
    items = [(failing, f"a{i}") for i in range(4)] + [(fine, f"b{i}") for i in range(2)]
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_concurrency=1
    ) as client:
        report = await client.send_all(items)
    assert report.counts["blocked_by_earlier_failure"] == 3, report.counts
    assert sum(_by_kind(otel).values()) == len(items)
    assert _by_kind(otel) == Counter({k: v for k, v in report.counts.items() if v})


async def test_outcomes_the_loop_did_not_see_are_counted(
    otel: Telemetry, server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Leaving ``send_many`` after the first outcome: what the loop saw plus what was
    left in ``unreported`` is exactly what the counter says."""
    conv = server.add_conversation()
    items = [(conv, f"m{i}") for i in range(20)]
    seen = 0
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        async with client.send_many(items) as outcomes:
            async for _ in outcomes:
                seen += 1
                break
        unreported = outcomes.unreported
    assert seen == 1
    got = Counter(o.kind for o in unreported) + Counter({"sent": seen})
    assert sum(_by_kind(otel).values()) == seen + len(unreported)
    assert _by_kind(otel) == got


async def test_cancelling_a_job_ends_every_span_and_empties_the_gauges(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """A job cancelled while its sends stall on the server: every message span that was
    started is ended (exported), and requests in flight and queued go back to 0."""
    convs = [server.add_conversation() for _ in range(8)]
    server.script("POST /messages", delay=30, times=None)
    async with make_client(server, max_concurrency=4) as client:
        task = asyncio.create_task(client.send_all([(c, "stalled") for c in convs]))
        await until(lambda: server.in_flight >= 4, "four sends on the wire")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.in_flight == 0
        active = otel.total("http.client.active_requests")
        queued = otel.total("opentrain.pacer.queued")
    assert active == 0
    assert queued == 0
    names = Counter(s.name for s in otel.spans())
    assert names["POST /messages"] >= 4
    assert names["opentrain.message.send"] >= 4, names  # every started message span ended
    assert all(s.end_time is not None for s in otel.spans())


async def test_an_invalid_single_send_is_an_outcome_too(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """``send_message`` with empty content raises ``InvalidRequestError`` without a
    request: counted as ``invalid`` with a message span, as the same input in a bulk
    job is."""
    conv = server.add_conversation()
    async with make_client(server) as client:
        with pytest.raises(InvalidRequestError):
            await client.send_message(conv, "")
        report = await client.send_all([(conv, "")])
    assert report.counts["invalid"] == 1
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "invalid"}) == 2
    spans = [s for s in otel.spans() if s.name == "opentrain.message.send"]
    assert [s.attributes["opentrain.outcome"] for s in spans] == ["invalid", "invalid"]
    assert server.stats()["requests"] == 0


async def test_sends_cut_off_after_the_grace_are_counted_once(
    otel: Telemetry, server: FakeOpenTrain
) -> None:
    """The loop is left while sends stall on the server: after the grace they are cut
    off as ``delivery_unknown``, the rest of their conversations not attempted; the
    counter says exactly what ``unreported`` holds, and every message span ended."""
    convs = [server.add_conversation() for _ in range(3)]
    server.script("POST /messages", delay=30, times=None)
    items = [(c, f"m{i}") for i in range(3) for c in convs]
    async with make_client(server, max_concurrency=3) as client:
        async with client.send_many(items, grace=0.05) as outcomes:
            waiting = asyncio.create_task(anext(outcomes))  # the sends start when awaited
            await until(lambda: server.in_flight > 0, "a send on the wire")
        with pytest.raises(StopAsyncIteration):
            await waiting  # the loop was left: the waiting consumer sees the end
        unreported = outcomes.unreported
    stalled = server.stats()["sends"]
    assert stalled >= 1
    kinds = Counter(o.kind for o in unreported)
    assert kinds["delivery_unknown"] == stalled, kinds
    assert _by_kind(otel) == kinds
    assert all(s.end_time is not None for s in otel.spans())
    assert Counter(s.name for s in otel.spans())["opentrain.message.send"] == stalled
