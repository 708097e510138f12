"""Retry-After hints a hostile server sends: huge ones capped, zero ones backed off."""

from __future__ import annotations

import pytest

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async._pacing import Pacer
from opentrain_async._pacing.backend import current_rate
from opentrain_async.testing import FakeOpenTrain, FakeTime


async def test_a_huge_hint_refused_by_max_retry_after_holds_nobody_back_longer(
    server: FakeOpenTrain,
) -> None:
    """A 429 whose hint is past ``max_retry_after`` fails at once (the user's cap); the
    pacer must not then hold every other request back for longer than that cap."""
    t = FakeTime()
    async with OpenTrainClient(
        server.token, server.base_url, clock=t.clock, sleep=t.sleep, max_retry_after=5
    ) as client:
        conv = server.add_conversation()
        await client.send_message(conv, "warm up")
        server.throttle_next(1, retry_after=1e9)
        with pytest.raises(RateLimitError):
            await client.send_message(conv, "hostile hint")
        before = t.slept
        await client.send_message(conv, "after")
        assert t.slept - before <= 5.0 * 1.2


async def test_a_huge_hint_does_not_slow_the_curve_for_good() -> None:
    """One 429 with a hint of 1e9 s (waited out only up to ``max_hint_pause``) must not
    be learned as a window that long: the curve climbs back to the limit afterwards."""
    t = FakeTime()
    pacer = Pacer(clock=t.clock, sleep=t.sleep)
    sent = await pacer.acquire()
    pacer.on_success(sent)
    await pacer.on_throttle(await pacer.acquire(), 0.5)  # first 429: the search starts
    t.advance(1.0)
    for _ in range(20):
        pacer.on_success(await pacer.acquire())
    await pacer.on_throttle(await pacer.acquire(), 1e9)  # a new episode: the cut
    state = pacer.state
    assert state.limit is not None
    later = current_rate(state, state.origin + 60.0, pacer.tuning)
    assert later is not None
    assert later >= 0.95 * state.limit


@pytest.mark.parametrize(
    "hint",
    [
        0,
        pytest.param(
            1e-300,
            marks=pytest.mark.xfail(
                strict=True,
                reason="a tiny positive hint is honoured (a 1000/s bucket's next token is "
                "under 1 ms): telling it from a hostile one needs a floor over consecutive "
                "429s of one input across send_many's and the pipeline's retries",
            ),
        ),
    ],
)
async def test_429s_with_a_zero_hint_are_no_busy_loop(hint: float) -> None:
    """A server answering 429 with ``retryAfterSeconds: 0`` again and again: send_many
    (whose 429s wait however many it takes) backs off as without a hint instead of
    asking again at once, forever."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        conv = fake.add_conversation()
        fake.throttle_next(30, retry_after=hint)
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            outcomes = [o async for o in c.send_many([(conv, "one")], concurrency=1)]
        assert [o.ok for o in outcomes] == [True]
        assert fake.stats()["requests"] == 31
        assert t.elapsed >= 20.0  # backing off: 0.5 s, 1 s, ... up to backoff_max
