"""Pacing against the fake server over loopback: what reaches the wire, not how fast."""

from __future__ import annotations

from opentrain_async import Pacer
from opentrain_async.testing import FakeOpenTrain, FakeTime, TokenBucket

from .conftest import make_client


async def test_stated_limit_draws_no_429s() -> None:
    """A client told the server's limit paces smoothly and is never answered 429.
    Virtual time for client and server alike: on the real clock a loaded machine's
    stalls bunch the arrivals past the bucket's burst of 5 (1 429 under coverage)."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(4)]
        server.set_rate_limit(TokenBucket(rate=400, burst=5))
        items = [(convs[i % 4], f"stated {i}") for i in range(120)]
        async with make_client(
            server, max_concurrency=32, rate_limit=400, clock=time.clock, sleep=time.sleep
        ) as client:
            report = await client.send_all(items)
    assert report.sent == 120
    assert server.stats()["rate_limited"] == 0
    assert client.stats.rate_limited == 0


async def test_learned_limit_delivers_everything_with_few_429s() -> None:
    """Not told the limit, the client learns it: all delivered once, 429s under 10%.
    Virtual time for client and server alike, so a loaded machine draws no more 429s."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(4)]
        server.set_rate_limit(TokenBucket(rate=500, burst=10))
        items = [(convs[i % 4], f"learned {i}") for i in range(300)]
        async with make_client(
            server, max_concurrency=64, clock=time.clock, sleep=time.sleep
        ) as client:
            report = await client.send_all(items)
        stats = server.stats()
    assert report.sent == 300
    assert stats["committed"] == 300
    assert stats["duplicates"] == 0
    assert stats["rate_limited"] <= 30
    assert client.pacer.state.limit is not None


async def test_single_and_bulk_sends_share_one_pacer(server: FakeOpenTrain) -> None:
    """A 429 seen by send_message slows the client's bulk sends too: one pacer per client."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=0.05)
    async with make_client(server) as client:
        await client.send_message(conv, "single")
        assert client.pacer.state.throttles == 1
        assert client.pacer.current_rate() is not None
        report = await client.send_all([(conv, f"bulk {i}") for i in range(5)])
    assert report.sent == 5
    assert client.pacer.describe().endswith("(learned)")


class CountingPacer(Pacer):
    """A pacer that counts the requests it admits and hears about."""

    def __init__(self) -> None:
        super().__init__()
        self.admitted = 0
        self.reported = 0

    def try_acquire(self) -> float | None:
        admitted = super().try_acquire()
        self.admitted += admitted is not None
        return admitted

    async def acquire(self) -> float:
        self.admitted += 1
        return await super().acquire()

    def on_success(self, sent_at: float) -> None:
        self.reported += 1
        super().on_success(sent_at)


async def test_reads_are_not_paced_and_do_not_feed_the_first_estimate(
    server: FakeOpenTrain,
) -> None:
    """Pacing counts sends only: reads (a resume's read-back and settling, listing)
    neither wait for a slot nor count as accepted sends, so they cannot inflate the
    first estimate of the rate and draw a burst of 429s on the sends that follow."""
    conv = server.add_conversation()
    pacer = CountingPacer()
    async with make_client(server, pacer=pacer) as client:
        for _ in range(20):
            await client.list_conversations()
        async for _ in client.iter_messages(conv):
            pass
        assert (pacer.admitted, pacer.reported) == (0, 0)
        await client.send_message(conv, "a send")
        report = await client.send_all([(conv, f"bulk {i}") for i in range(3)])
    assert report.sent == 3
    assert (pacer.admitted, pacer.reported) == (4, 4)


async def test_a_stated_limit_does_not_slow_reads(server: FakeOpenTrain) -> None:
    """rate_limit paces sends; reading a conversation back is never held to it."""
    conv = server.add_conversation()
    time = FakeTime()
    async with make_client(server, rate_limit=1, clock=time.clock, sleep=time.sleep) as client:
        await client.send_message(conv, "one")
        for _ in range(5):
            await client.list_conversations()
    assert time.sleeps == []
