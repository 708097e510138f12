"""Order within a conversation: send_many/send_all send input k+1 of a conversation only
once input k has its outcome; conversations stay concurrent; a failure for good stops
the rest of its conversation (each with its own outcome) unless told to go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from opentrain_async import (
    BlockedByEarlierFailureError,
    ConfigurationError,
    NotAttemptedError,
    OpenTrainClient,
    OutgoingMessage,
    SendOutcome,
)
from opentrain_async._order import DEFAULT_PARKED
from opentrain_async.testing import FakeOpenTrain, FakeTime, TokenBucket

from .conftest import make_client

PARTS = 5


def numbered(conversations: list[str], parts: int = PARTS) -> list[tuple[str, str]]:
    """Every conversation's parts written back to back, as a user writes a job."""
    return [(c, f"part {k} of {parts}") for c in conversations for k in range(1, parts + 1)]


def parts_read(server: FakeOpenTrain, conversation_id: str) -> list[int]:
    """What a recipient reads: the part numbers, in the order the server stored them."""
    return [int(m["content"].split()[1]) for m in server.messages(conversation_id)]


@pytest.fixture
async def paced() -> AsyncIterator[tuple[FakeOpenTrain, FakeTime]]:
    """A fake server whose 50/s token bucket runs on the same virtual time as the client."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as fake:
        fake.set_rate_limit(TokenBucket(rate=50, burst=5))
        yield fake, time


def client_on(server: FakeOpenTrain, time: FakeTime, **options: Any) -> OpenTrainClient:
    return make_client(server, clock=time.clock, sleep=time.sleep, wall_clock=time.time, **options)


@pytest.mark.parametrize("api", ["send_many", "send_all"])
async def test_429s_on_part_one_never_let_later_parts_overtake(
    paced: tuple[FakeOpenTrain, FakeTime], api: str
) -> None:
    """30 conversations x 5 parts against a 50/s bucket, the first sends (all part 1s)
    answered 429: every conversation reads 1..5 in order, nothing lost or doubled."""
    server, time = paced
    conversations = [server.add_conversation() for _ in range(30)]
    server.throttle_next(30, retry_after=0.5)  # the first sends: part 1 of each conversation
    async with client_on(server, time) as client:
        if api == "send_many":
            outcomes = [o async for o in client.send_many(numbered(conversations))]
            assert all(o.ok for o in outcomes)
        else:
            report = await client.send_all(numbered(conversations))
            assert report.sent == 30 * PARTS
    assert server.stats()["rate_limited"] >= 30
    assert server.stats()["duplicates"] == 0
    for conv in conversations:
        assert parts_read(server, conv) == [1, 2, 3, 4, 5]


async def test_unordered_is_the_old_behaviour_and_lets_parts_overtake(
    paced: tuple[FakeOpenTrain, FakeTime],
) -> None:
    """ordered=False: the same job with 429s on part 1 reads out of order somewhere (the
    test above would fail without the chains)."""
    server, time = paced
    conversations = [server.add_conversation() for _ in range(30)]
    server.throttle_next(30, retry_after=0.5)
    async with client_on(server, time) as client:
        report = await client.send_all(numbered(conversations), ordered=False)
    assert report.sent == 30 * PARTS
    assert any(parts_read(server, c) != [1, 2, 3, 4, 5] for c in conversations)


async def test_conversations_stay_concurrent(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """One send of each conversation is on the wire at once (no head-of-line blocking),
    never two of the same conversation."""
    conversations = [server.add_conversation() for _ in range(8)]
    server.script("POST /messages", delay=0.05, times=None)
    on_wire: dict[str, int] = {}
    peak_same = 0
    peak_all = 0

    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        original = client._delivery.deliver

        async def spy(
            conversation_id: str, content: str, reconcile: bool, gate: Any, paced: bool
        ) -> Any:
            nonlocal peak_same, peak_all
            on_wire[conversation_id] = on_wire.get(conversation_id, 0) + 1
            peak_same = max(peak_same, on_wire[conversation_id])
            peak_all = max(peak_all, sum(on_wire.values()))
            try:
                return await original(conversation_id, content, reconcile, gate, paced)
            finally:
                on_wire[conversation_id] -= 1

        client._delivery.deliver = spy  # type: ignore[method-assign]
        report = await client.send_all(numbered(conversations, 3), concurrency=16)
    assert report.sent == 24
    assert peak_same == 1
    assert peak_all == 8


async def test_a_failure_mid_conversation_stops_the_rest_of_it(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Part 3 refused for good (409): parts 4 and 5 are not sent, each with its own
    outcome naming part 3; the other conversations are untouched."""
    good = server.add_conversation()
    bad = server.add_conversation()
    server.block_content("part 3 of 5")  # 403 message_policy_blocked, on every conversation
    items = [OutgoingMessage(bad, f"part {k} of 5", key=f"bad-{k}") for k in range(1, 6)]
    items += [OutgoingMessage(good, f"part {k} of 4", key=f"good-{k}") for k in range(1, 5)]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        outcomes = {o.key: o for o in [o async for o in client.send_many(items)]}
    assert len(outcomes) == 9
    assert [outcomes[f"bad-{k}"].ok for k in (1, 2)] == [True, True]
    assert outcomes["bad-3"].kind == "message_policy_blocked"
    for k in (4, 5):
        outcome = outcomes[f"bad-{k}"]
        error = outcome.error
        assert isinstance(error, BlockedByEarlierFailureError)
        assert isinstance(error, NotAttemptedError)
        assert outcome.kind == "blocked_by_earlier_failure"
        assert (error.waited_on, error.waited_on_key) == (2, "bad-3")
        assert error.__cause__ is outcomes["bad-3"].error
        assert "input #2 (key 'bad-3')" in str(error)
    assert parts_read(server, bad) == [1, 2]
    assert parts_read(server, good) == [1, 2, 3, 4]


async def test_on_failure_continue_sends_the_rest_in_order(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """on_failure="continue": part 3 fails, parts 4 and 5 are still sent after it."""
    conv = server.add_conversation()
    server.block_content("part 3 of 5")
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        report = await client.send_all(numbered([conv]), on_failure="continue")
    assert report.sent == 4
    assert report.counts["message_policy_blocked"] == 1
    assert parts_read(server, conv) == [1, 2, 4, 5]


async def test_an_invalid_part_stops_its_conversation_in_its_turn(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """An invalid input is a failure for good too: the parts after it are blocked, the
    ones before it delivered."""
    conv = server.add_conversation()
    items = [(conv, "part 1 of 3"), (conv, ""), (conv, "part 3 of 3")]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        outcomes = sorted([o async for o in client.send_many(items)], key=lambda o: o.index)
    assert [o.kind for o in outcomes] == ["sent", "invalid", "blocked_by_earlier_failure"]
    assert parts_read(server, conv) == [1]


async def test_send_many_streams_each_conversation_in_input_order(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Outcomes arrive in completion order overall, but a conversation's outcomes come
    in its input order, blocked ones included, even with a slow consumer."""
    conversations = [server.add_conversation() for _ in range(6)]
    server.block_content("part 2 of 5")
    server.script("POST /messages", delay=0.01, times=None, probability=0.5)
    seen: dict[str, list[int]] = {c: [] for c in conversations}
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        async for outcome in client.send_many(numbered(conversations), concurrency=4):
            conv, content = outcome.item  # type: ignore[misc]
            seen[conv].append(int(content.split()[1]))
            await asyncio.sleep(0)  # a consumer that lets the workers run ahead
    for conv in conversations:
        assert seen[conv] == [1, 2, 3, 4, 5]
        assert parts_read(server, conv) == [1]


def test_order_options_are_checked(client: OpenTrainClient) -> None:
    """A misspelt on_failure or a non-bool ordered is a ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="on_failure"):
        client.send_many([], on_failure="skip")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ordered"):
        client.send_many([], ordered="yes")  # type: ignore[arg-type]


async def test_memory_stays_bounded_for_one_long_conversation(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """40,000 inputs of one conversation are not read ahead without bound: at most the
    parking limit waits, and the iterable is pulled as the chain moves on."""
    conv = server.add_conversation()
    pulled = 0

    def items() -> Iterator[tuple[str, str]]:
        nonlocal pulled
        for i in range(40_000):
            pulled += 1
            yield conv, f"m{i}"

    limit = DEFAULT_PARKED + 16 * 4
    peak_ahead = 0
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        done = 0
        async for outcome in client.send_many(items(), concurrency=4):
            assert outcome.ok
            done += 1
            peak_ahead = max(peak_ahead, pulled - done)
            if done == 500:
                break
    assert peak_ahead <= limit + 4 + 4  # parked + in progress + queued outcomes
    assert pulled < 40_000


async def test_leaving_early_reports_parked_inputs_as_not_sent(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """aclose() with inputs parked behind a send: each is in ``unreported`` as never
    sent, and none of them reaches the server."""
    conv = server.add_conversation()
    server.script("POST /messages", delay=0.2, times=1)
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        sending = client.send_many(numbered([conv]), concurrency=4)
        waiting = asyncio.ensure_future(sending.__anext__())  # starts the workers
        while client.in_flight < 1:  # noqa: ASYNC110 - no event for this
            await asyncio.sleep(0)
        await sending.aclose(grace=5)
        with pytest.raises(StopAsyncIteration):
            await waiting
    unreported: list[SendOutcome] = sorted(sending.unreported, key=lambda o: o.index)
    assert [o.index for o in unreported] == [0, 1, 2, 3, 4]
    assert unreported[0].ok
    assert all(isinstance(o.error, NotAttemptedError) for o in unreported[1:])
    assert parts_read(server, conv) == [1]


async def test_read_back_of_an_unknown_outcome_keeps_the_order(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Part 1 answered 502 (outcome unknown: it may have been committed): part 2 waits
    until read-back has looked for part 1 and it was sent again; nothing twice."""
    conversations = [server.add_conversation() for _ in range(3)]
    server.fail_next(3, status=502)  # the first sends: part 1 of each conversation
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        report = await client.send_all(numbered(conversations))
    assert report.sent == 15
    assert server.stats()["duplicates"] == 0
    for conv in conversations:
        assert parts_read(server, conv) == [1, 2, 3, 4, 5]
