"""Adversary round adv3: a job halted by a quota 429 (hint past ``max_retry_after``)
while sends of the same conversations wait at the pacer, then run again with its
journal (file and Redis): every input one outcome per run, each message stored once,
each conversation in order.  The fake server over loopback, an injected clock."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .redis_server import RedisServer

QUOTA_HINT = 86_400
CONVERSATIONS = 6
PARTS = 8


class _QuotaAfter:
    """Admits ``admitted`` sends (with a rounded one-second 429 every ``every``-th
    call before that), then refuses everything with a daily quota's hint."""

    retry_after_header = False
    integer_hints = True

    def __init__(self, admitted: int, every: int = 3) -> None:
        self.left = admitted
        self.every = every
        self.calls = 0
        self.refused = 0  # the quota's refusals

    def _limiter(self, origin: float, now: float) -> _QuotaAfter:
        return self

    def acquire(self, now: float) -> float | int | None:
        self.calls += 1
        if self.left <= 0:
            self.refused += 1
            return QUOTA_HINT
        if self.calls % self.every == 0:
            return 1  # a rounded "within the second"
        self.left -= 1
        return None


def _items(convs: list[str]) -> list[tuple[str, str]]:
    """Parts interleaved: conv0 p0, conv1 p0, ..., conv0 p1, ..."""
    return [(c, f"{c} part {p}") for p in range(PARTS) for c in convs]


async def _run_twice(journal: str, tmp_path: Path) -> None:
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        fake.set_rate_limit(_QuotaAfter(admitted=17))  # type: ignore[arg-type]
        convs = [fake.add_conversation() for _ in range(CONVERSATIONS)]
        items = _items(convs)
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            first = await c.send_all(items, journal=journal, concurrency=64)
        assert sum(first.counts.values()) == len(items), first.counts
        assert first.counts["not_attempted"], first.counts  # halted with sends queued
        assert first.counts["sent"] == 17, first.counts
        fake.set_rate_limit(None)
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            second = await c.send_all(items, journal=journal, concurrency=64)
        assert sum(second.counts.values()) == len(items), second.counts
        assert second.counts == Counter({"sent": len(items)}), (first.counts, second.counts)
        assert fake.stats()["duplicates"] == 0
        for conv in convs:
            stored = [m["content"] for m in fake.messages(conv)]
            assert stored == [f"{conv} part {p}" for p in range(PARTS)], stored


async def test_a_quota_halt_then_a_rerun_with_a_file_journal(tmp_path: Path) -> None:
    await _run_twice(str(tmp_path / "job.journal"), tmp_path)


async def test_a_quota_halt_then_a_rerun_with_a_redis_journal(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    await _run_twice(f"{redis_server.url}?job=adv3-halt", tmp_path)


async def test_cancelling_the_consumer_mid_halt_leaves_every_input_one_outcome() -> None:
    """The task looping over ``send_many`` is cancelled as soon as it sees the quota's
    refusal (sends of the same conversations waiting at the pacer's 60 s pause): the
    outcomes seen plus ``unreported`` are every input pulled, each once."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock) as fake:
        fake.set_rate_limit(_QuotaAfter(admitted=17))  # type: ignore[arg-type]
        convs = [fake.add_conversation() for _ in range(CONVERSATIONS)]
        items = _items(convs)
        seen: list[int] = []
        holder: dict[str, object] = {}
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:

            async def consume() -> None:
                async with c.send_many(items, concurrency=64, grace=1.0) as outcomes:
                    holder["o"] = outcomes
                    async for o in outcomes:
                        seen.append(o.index)
                        if o.kind == "rate_limited":
                            asyncio.current_task().cancel()  # type: ignore[union-attr]

            task = asyncio.ensure_future(consume())
            with pytest.raises(asyncio.CancelledError):
                await task
        outcomes = holder["o"]
        unreported = [o.index for o in outcomes.unreported]  # type: ignore[attr-defined]
        both = seen + unreported
        assert len(both) == len(set(both)), Counter(both).most_common(3)
        assert set(both) == set(range(len(both)))  # a prefix of the inputs: all pulled
        assert fake.stats()["duplicates"] == 0
        stored = {m["content"] for conv in convs for m in fake.messages(conv)}
        sent = {items[o.index][1] for o in outcomes.unreported if o.ok}  # type: ignore[attr-defined]
        assert sent <= stored


async def test_a_quota_halt_then_a_rerun_unordered_and_with_the_parts_reshuffled(
    tmp_path: Path,
) -> None:
    """A careless user: after the halt, the same journal with ``ordered=False`` and the
    inputs in another order (keys keep them the same inputs): each message stored
    once."""
    t = FakeTime()
    journal = str(tmp_path / "job.journal")
    async with FakeOpenTrain(clock=t.clock) as fake:
        fake.set_rate_limit(_QuotaAfter(admitted=17))  # type: ignore[arg-type]
        convs = [fake.add_conversation() for _ in range(CONVERSATIONS)]
        items = [
            {"conversationId": c, "content": text, "key": f"{c}-{text}"}
            for c, text in _items(convs)
        ]
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            first = await c.send_all(items, journal=journal)
        assert first.counts["not_attempted"], first.counts
        fake.set_rate_limit(None)
        async with OpenTrainClient(fake.token, fake.base_url, clock=t.clock, sleep=t.sleep) as c:
            second = await c.send_all(items[::-1], journal=journal, ordered=False)
        assert second.counts == Counter({"sent": len(items)}), (first.counts, second.counts)
        assert fake.stats()["duplicates"] == 0
        stored = sorted(m["content"] for conv in convs for m in fake.messages(conv))
        assert stored == sorted(i["content"] for i in items)
