"""A webhook dedupe store that fails renewals for a while (a Redis blip): ``RENEW_INTERVAL``
says "three renewals in a row may fail ... before the claim lapses".  At a quarter of
``PENDING_TTL`` they could not: the fourth renewal after the last good one comes a whole
claim later (4 x 30 s = 120 s, plus each round trip), when the claim has lapsed, so a
blip of three renewals handed OpenTrain's retry to another replica while ``on_event``
still ran (on 748ad8c: handled twice).  A fifth of it (24 s) leaves the fourth renewal
24 s before the lapse.  Driven as tests/test_webhook_slow_handler.py drives renewals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from opentrain_async import MemoryDedupeStore
from opentrain_async._webhooks import PENDING_TTL, RENEW_INTERVAL

from .test_webhook_slow_handler import Replica, Ticks


class Blip(MemoryDedupeStore):
    """A store whose renewals numbered in ``failing`` raise, as a Redis blip does."""

    def __init__(self, clock: Callable[[], float], failing: set[int]) -> None:
        super().__init__(clock=clock)
        self.failing = failing
        self.renewals = 0

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        self.renewals += 1
        if self.renewals in self.failing:
            raise ConnectionError("Redis blip")
        return await super().renew(key, token, ttl)


async def _last_step(ticks: Ticks) -> None:
    """``Ticks.step`` without waiting for the renewer to sleep again (a renewer that
    finds its claim lapsed stops)."""
    assert ticks.sleeping
    assert ticks._waiting is not None
    ticks.now[0] += ticks.asked[-1]
    ticks._waiting.set_result(None)
    for _ in range(20):  # the renewal: a memory store's, no I/O
        await asyncio.sleep(0)


async def test_three_failed_renewals_in_a_row_leave_the_claim_held() -> None:
    now = [0.0]
    store, ticks = Blip(lambda: now[0], {1, 2, 3}), Ticks(now)
    async with Replica(store, ticks) as a, Replica(store) as b:
        first = a.post("dlv_1")
        await a.entered.wait()
        for _ in range(3):  # three renewals fail
            await ticks.step()
        await _last_step(ticks)  # the fourth: in time, or (748ad8c) the claim had lapsed
        assert 3 * RENEW_INTERVAL < PENDING_TTL
        assert now[0] == 4 * RENEW_INTERVAL
        assert await b.status("dlv_1") == 409  # on 748ad8c: 200, handled by B too
        a.finish.set()
        assert (await first).status == 200
        assert b.started == []
