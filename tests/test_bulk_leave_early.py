"""Leaving a send_many loop early (break, an exception, aclose): sends on the wire finish
within a grace instead of being cut mid-flight, no new send starts, and every input that
was pulled still has exactly one outcome: seen by the loop or in ``unreported``.  These
tests send one conversation concurrently (``ordered=False``); leaving an ordered run
early is in test_bulk_order."""

from __future__ import annotations

import asyncio
import logging

import pytest

from opentrain_async import (
    DeliveryUnknownError,
    NotAttemptedError,
    OpenTrainClient,
    SendOutcome,
)
from opentrain_async.testing import FakeOpenTrain, Fault


class Boom(Exception):
    """The consumer's own failure."""


async def test_break_lets_sends_on_the_wire_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """break under `async with` while sends are on the wire: they land and are reported
    in `unreported`; nothing is sent after; seen + unreported == pulled == committed."""
    async with FakeOpenTrain(latency=0.2) as server:
        conv = server.add_conversation()
        seen: list[SendOutcome] = []
        async with OpenTrainClient(server.token, server.base_url) as client:
            async with client.send_many(
                ((conv, f"m{i}") for i in range(1000)), concurrency=4, ordered=False
            ) as outcomes:
                async for outcome in outcomes:
                    seen.append(outcome)
                    if len(seen) == 6:
                        break
            unreported = outcomes.unreported
            sends_after = len(server.sends)
            assert client.in_flight == 0
        assert all(o.ok for o in unreported), [o.error for o in unreported]
        assert 1 <= len(unreported) <= 2 * 4  # queued for the loop, or on the wire
        indexes = sorted(o.index for o in seen + unreported)
        assert indexes == list(range(len(indexes)))  # one outcome per pulled input
        assert server.stats()["committed"] == len(indexes) == sends_after
        assert len(server.sends) == sends_after
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


async def test_an_exception_in_the_consumer_also_waits_for_the_wire() -> None:
    """An exception raised in the loop body propagates after the in-flight sends ended."""
    async with FakeOpenTrain(latency=0.2) as server:
        conv = server.add_conversation()
        async with OpenTrainClient(server.token, server.base_url) as client:
            stream = client.send_many(
                ((conv, f"m{i}") for i in range(100)), concurrency=3, ordered=False
            )

            async def consume() -> None:
                async with stream:
                    async for _ in stream:
                        raise Boom

            with pytest.raises(Boom):
                await consume()
        assert stream.unreported
        assert all(o.ok for o in stream.unreported)
        assert server.stats()["committed"] == 1 + len(stream.unreported)


async def test_grace_running_out_reports_unknown(server: FakeOpenTrain) -> None:
    """Sends stalled past the grace are cancelled and reported as delivery_unknown."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=30)
    async with OpenTrainClient(server.token, server.base_url) as client:
        outcomes = client.send_many(
            ((conv, f"m{i}") for i in range(50)), concurrency=2, ordered=False
        )
        consumer = asyncio.ensure_future(outcomes.__anext__())
        while client.in_flight < 2:  # noqa: ASYNC110 - the client exposes no event for this
            await asyncio.sleep(0)
        await outcomes.aclose(grace=0.1)
        with pytest.raises(StopAsyncIteration):
            await consumer
    assert [o.kind for o in outcomes.unreported] == ["delivery_unknown"] * 2
    assert all(isinstance(o.error, DeliveryUnknownError) for o in outcomes.unreported)
    assert sorted(o.index for o in outcomes.unreported) == [0, 1]


async def test_no_send_starts_after_the_loop_ended(server: FakeOpenTrain) -> None:
    """An input waiting out a 429 when the loop is left does not send when its wait
    ends: it is reported not attempted, and the server sees no further send.  (Its
    wait is the pacer's short pause: a bulk input's first one-second hint is the
    pacer's to wait.)"""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=1.0)
    release = asyncio.Event()
    slept = [0.0]

    async def sleep(seconds: float) -> None:
        if seconds > 0:  # the 429's wait: held until the loop has been left
            await release.wait()
        slept[0] += seconds  # the clock moves as far as the wait would have taken it

    async with OpenTrainClient(
        server.token, server.base_url, clock=lambda: slept[0], sleep=sleep
    ) as client:
        stream = client.send_many(
            [(conv, "throttled"), (conv, "fine")], concurrency=2, ordered=False
        )
        async with stream:
            async for outcome in stream:
                assert outcome.item == (conv, "fine")
                asyncio.get_running_loop().call_soon(release.set)
                break
    [late] = stream.unreported
    assert late.item == (conv, "throttled")
    assert isinstance(late.error, NotAttemptedError)
    assert late.kind == "not_attempted"
    assert [m["content"] for m in server.messages(conv)] == ["fine"]
    assert len(server.sends) == 2  # the 429 and "fine": no retry after the loop ended
