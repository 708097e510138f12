"""One conversation refused for ever with a tiny exact hint (``retryAfterSeconds:
0.001``): a bulk send, whose 429s never end an input, must not retry it hundreds of
times a second for as long as the job runs.  The fake server over loopback, an
injected clock, the requests counted at the server in the first virtual seconds.
Found by the adversary round of 2026-12-07 (branch ``adv3``: ~900 requests/s at 1 ms,
~8,600/s at 1 ns); bounded by ``RetryPolicy.resend_wait`` (branch ``robust``).
"""

from __future__ import annotations

import asyncio

import pytest

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async.testing import FakeOpenTrain, FakeTime

HORIZON = 5.0
"""Virtual seconds the refused input is watched for."""
FOREVER = 10**9
STORM = 100
"""Requests after which a run is a storm whatever the clock says (so main fails fast)."""


async def _requests_within(hint: float, horizon: float) -> tuple[int, float]:
    """Run ``send_many`` of one input every send of which is refused with ``hint``:
    the requests the server has counted, and the virtual seconds, when a sleep is first
    asked past ``horizon`` virtual seconds or ``STORM`` requests."""
    time = FakeTime()
    counted: list[tuple[int, float]] = []
    passed = asyncio.Event()
    async with FakeOpenTrain(clock=time.clock) as fake:
        cid = fake.add_conversation()
        fake.throttle_next(FOREVER, retry_after=hint)

        def watch(_: float) -> None:
            requests = fake.stats()["requests"]
            if (time.elapsed >= horizon or requests > STORM) and not counted:
                counted.append((requests, time.elapsed))
                passed.set()

        time.on_sleep.append(watch)
        async with OpenTrainClient(
            fake.token, fake.base_url, clock=time.clock, sleep=time.sleep
        ) as client:

            async def run() -> None:
                async for _ in client.send_many([(cid, "refused for ever")]):
                    pass

            job = asyncio.create_task(run())
            marked = asyncio.create_task(passed.wait())
            await asyncio.wait({job, marked}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
            ended = job.done()
            job.cancel()
            marked.cancel()
            await asyncio.gather(job, return_exceptions=True)
    assert not ended, "a 429 under max_retry_after ended the input"
    assert counted, "neither mark was reached in 60 s of real time"
    return counted[0]


@pytest.mark.parametrize("hint", [0.001, 1e-9])
async def test_a_conversation_refused_with_a_tiny_exact_hint_is_not_stormed(
    hint: float,
) -> None:
    """Each spent retry budget (6 requests) from the second on waits a growing floor
    (0.25-0.5 s, doubling): at most a few dozen requests in 5 virtual seconds.  On main
    2f9670d: 4,271 in 5 s at 1 ms; at 1 ns the clock barely moves (113,866 requests in
    the first 1.6 virtual s); here both stop at ``STORM`` requests, well before 5 s."""
    requests, elapsed = await _requests_within(hint, HORIZON)
    assert (requests <= 40, elapsed >= HORIZON) == (True, True), (requests, elapsed)


async def test_the_refused_input_is_delivered_once_the_refusals_stop() -> None:
    """The floor delays, it does not drop: 30 refusals at 1 ms, then the input goes."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as fake:
        cid = fake.add_conversation()
        fake.throttle_next(30, retry_after=0.001)
        async with OpenTrainClient(
            fake.token, fake.base_url, clock=time.clock, sleep=time.sleep
        ) as client:
            outcomes = [o async for o in client.send_many([(cid, "late")])]
        assert [o.ok for o in outcomes] == [True]
        assert fake.stats()["requests"] == 31
        assert time.elapsed < 15  # floors 0.5 + 1 + 2 + 4 at most, and the budgets


async def test_send_message_spends_its_retry_budget_and_raises() -> None:
    """``send_message`` was bounded already: its retry budget (``max_retries`` 5, so 6
    requests) of 1 ms waits, then ``RateLimitError``; unchanged."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as fake:
        cid = fake.add_conversation()
        fake.throttle_next(FOREVER, retry_after=0.001)
        async with OpenTrainClient(
            fake.token, fake.base_url, clock=time.clock, sleep=time.sleep
        ) as client:
            with pytest.raises(RateLimitError):
                await client.send_message(cid, "refused")
        assert fake.stats()["requests"] == 6
