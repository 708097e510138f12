"""A shut limiter's probe meeting a hostile answer: every input still gets one outcome,
nothing hangs (each run bounded by ``asyncio.wait_for``), and the client stays usable.
Injected clocks and sleeps; the fake server over loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .waiting import until

NO_HINT = {"reason": "rate_limited"}


def _shut_then(fake: FakeOpenTrain, hostile: dict[str, Any]) -> None:
    """429s with no hint long enough to shut the limiter, then ``hostile`` answers."""
    fake.script(
        "POST /messages", status=429, error="Rate limit exceeded", details=NO_HINT, times=12
    )
    fake.script("POST /messages", **hostile)


HOSTILE = {
    "reset": {"drop": True, "times": 2},
    "500": {"status": 500, "error": "Internal", "times": 2},
    "503": {"status": 503, "error": "Unavailable", "times": 2},
    "429 not json": {"status": 429, "body": "slow down", "content_type": "text/plain", "times": 2},
    "429 negative hint": {
        "status": 429,
        "error": "Rate limit exceeded",
        "details": {"reason": "rate_limited", "retryAfterSeconds": -5},
        "times": 2,
    },
    "429 string hint": {
        "status": 429,
        "error": "Rate limit exceeded",
        "details": {"reason": "rate_limited", "retryAfterSeconds": "soon"},
        "times": 2,
    },
    "429 nan hint": {
        "status": 429,
        "body": '{"error": "x", "details": {"reason": "rate_limited", "retryAfterSeconds": NaN}}',
        "times": 2,
    },
    "429 inf hint": {
        "status": 429,
        "body": '{"error": "x", "details": {"reason": "rate_limited", "retryAfterSeconds": 1e999}}',
        "times": 2,
    },
    "429 header nan": {"status": 429, "error": "x", "headers": {"Retry-After": "NaN"}, "times": 2},
    "429 header inf": {"status": 429, "error": "x", "headers": {"Retry-After": "inf"}, "times": 2},
    "429 header -1": {"status": 429, "error": "x", "headers": {"Retry-After": "-1"}, "times": 2},
    "429 header date": {
        "status": 429,
        "error": "x",
        "headers": {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
        "times": 2,
    },
    "302": {"status": 302, "body": "", "headers": {"Location": "/elsewhere"}, "times": 2},
    "200 not json": {"status": 200, "body": "ok", "content_type": "text/plain", "times": 2},
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_probe_meeting_a_hostile_answer_hangs_nothing(name: str) -> None:
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        conv = fake.add_conversation()
        _shut_then(fake, HOSTILE[name])
        async with OpenTrainClient(
            fake.token, fake.base_url, clock=t.clock, sleep=t.sleep, timeout=2.0
        ) as client:

            async def run() -> list[Any]:
                items = [(conv, f"m{i}") for i in range(8)]
                return [o async for o in client.send_many(items, concurrency=4)]

            outcomes = await asyncio.wait_for(run(), 30.0)
            assert sorted(o.index for o in outcomes) == list(range(8))
            fake.clear_faults()
            await asyncio.wait_for(client.send_message(conv, "after"), 10.0)
        contents = [m["content"] for m in fake.messages(conv)]
        assert len(contents) == len(set(contents))


async def _shut_client(client: OpenTrainClient, fake: FakeOpenTrain, conv: str) -> None:
    """Shut the client's limiter: 429s with no hint outlasting its guessed pause."""
    fake.script(
        "POST /messages", status=429, error="Rate limit exceeded", details=NO_HINT, times=12
    )
    for _ in range(2):
        with pytest.raises(RateLimitError):
            await client.send_message(conv, "refused")


@pytest.mark.slow  # the server stalls the probe for a real second
@pytest.mark.parametrize("how", ["wait_for", "cancel", "break"])
async def test_a_probe_cancelled_in_flight_holds_nobody_back(how: str) -> None:
    """The probe's request cancelled while the server stalls it (a ``wait_for`` timeout,
    a task cancelled, a loop over ``send_many`` left): the next request goes."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        conv = fake.add_conversation()
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            await _shut_client(c, fake, conv)
            assert c.pacer.probe.shut
            fake.script("POST /messages", delay=1.0)  # the probe stalls (a real second)
            if how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(c.send_message(conv, "probe"), 0.3)
            elif how == "cancel":
                task = asyncio.ensure_future(c.send_message(conv, "probe"))
                await until(lambda: fake.in_flight > 0 or task.done(), "the probe to stall")
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                items = [(conv, "probe"), (conv, "second")]
                async for _ in c.send_many(items, concurrency=2):
                    break
            sent = await asyncio.wait_for(c.send_message(conv, "after"), 3.0)
            assert sent.content == "after"
