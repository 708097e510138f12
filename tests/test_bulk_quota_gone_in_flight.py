"""A quota gone mid-job (every send refused with a hint past ``max_retry_after``): the
job halts, and the sends already pulled but still waiting for the pacer are not
attempted either, rather than each waiting out a pause and drawing the same refusal.
The fake server over loopback, an injected clock, the requests counted at the server.
Found by the adversary round of 2026-12-07 (branch ``pacadv``)."""

from __future__ import annotations

from collections import Counter

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

ADMITTED = 5
QUOTA_HINT = 86_400  # a daily quota: far past max_retry_after (120 s)


class _QuotaGone:
    """A duck-typed fake-server limit: the first ``ADMITTED`` sends, then every one
    refused with ``retryAfterSeconds: QUOTA_HINT``."""

    retry_after_header = False

    def __init__(self) -> None:
        self.admitted = 0

    def _limiter(self, origin: float, now: float) -> _QuotaGone:
        return self

    def acquire(self, now: float) -> float | None:
        if self.admitted < ADMITTED:
            self.admitted += 1
            return None
        return QUOTA_HINT


async def test_sends_waiting_for_the_pacer_when_the_quota_goes_are_not_attempted() -> None:
    """Each input one outcome, the delivered ones once, and no send starts once the
    first refusal halted the job: on main d5000f7 the 64 sends pulled by then each
    waited out a pause of 60 s (``max_hint_pause``) and went, 64 refusals over 14
    virtual minutes for a job already known doomed."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        fake.set_rate_limit(_QuotaGone())  # type: ignore[arg-type]
        convs = [fake.add_conversation() for _ in range(100)]
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            items = [(conv, f"m{i}") for i, conv in enumerate(convs)]
            outcomes = [o async for o in c.send_many(items, concurrency=64)]
        assert sorted(o.index for o in outcomes) == list(range(100))
        kinds = Counter(o.kind for o in outcomes)
        assert kinds["sent"] == ADMITTED
        assert sum(len(fake.messages(conv)) for conv in convs) == ADMITTED  # each once
        refused = [r.received_at for r in fake.sends if r.status == 429]
        assert refused
        # Only the sends already on the wire when the first refusal came back.
        assert max(refused) - min(refused) < 1.0, [x - min(refused) for x in refused]
        assert kinds["not_attempted"] == 100 - ADMITTED - len(refused)
