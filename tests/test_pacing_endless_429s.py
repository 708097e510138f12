"""A server that answers 429 with no hint for a long time, then recovers: the pause
stays at most a second (no overflow of its doubling), the input is delivered once.
Injected clocks; the fake server over loopback."""

from __future__ import annotations

import asyncio

from opentrain_async import OpenTrainClient
from opentrain_async._pacing.pause import on_hint
from opentrain_async._pacing.state import PacingState, PacingTuning
from opentrain_async.testing import FakeOpenTrain, FakeTime


def test_the_short_pause_stays_short_after_any_number_of_429s() -> None:
    """The pause doubles per 429 in a row up to a second; its doubling is computed
    from the streak, which a server refusing for an hour takes past 1024 (2**1024
    overflows a float: OverflowError out of every 429's report from then on)."""
    tuning = PacingTuning()
    state = PacingState(streak=5000, pause_began=0.0)
    after = on_hint(state, 10.0, 10.0, None, tuning)
    assert after.streak == 5001
    assert after.pause_until == 11.0


async def test_1100_429s_without_a_hint_then_the_send_goes_through() -> None:
    """send_many waits 429s out however many there are: 1,100 of them (about 20
    virtual minutes at a second's pause each) end in one delivery, not an error."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        conv = fake.add_conversation()
        fake.throttle_next(1100, in_body=False)
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:

            async def run() -> list[bool]:
                return [o.ok async for o in c.send_many([(conv, "once")], concurrency=1)]

            assert await asyncio.wait_for(run(), 60.0) == [True]
        assert [m["content"] for m in fake.messages(conv)] == ["once"]
        assert fake.stats()["requests"] == 1101
