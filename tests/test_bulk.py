"""send_many / send_all: one outcome per input, laziness, cancellation, reconciliation."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from opentrain_async import (
    ConflictError,
    DeliveryUnknownError,
    InvalidRequestError,
    NotFoundError,
    OpenTrainClient,
    OpenTrainError,
    OutgoingMessage,
    PacingTuning,
    PermissionDeniedError,
    RateLimitError,
    SendOutcome,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .conftest import make_client


async def collect(client: OpenTrainClient, items: Any, **options: Any) -> list[SendOutcome]:
    return [o async for o in client.send_many(items, **options)]


async def assert_nothing_more_is_sent(
    server: FakeOpenTrain, client: OpenTrainClient, conv: str
) -> None:
    """After a bulk send ended, one probe is the only request the client still makes:
    no worker of the old batch sends anything more."""
    server.clear_faults()
    started = client.stats.requests
    await client.send_message(conv, "probe")
    assert client.stats.requests == started + 1


async def test_every_input_gets_exactly_one_outcome(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Good, invalid and refused inputs each get one outcome; nothing fails fast."""
    conv = server.add_conversation()
    read_only = server.add_conversation(send_block="read_only_conversation")
    server.block_content("spam")
    items: list[Any] = [
        (conv, "tuple"),
        {"conversationId": conv, "content": "mapping", "key": "k-1"},
        OutgoingMessage(conv, "attrs", key="k-2"),
        (conv, ""),
        {"conversationId": conv},
        42,
        (conv, "x" * 10_001),
        (read_only, "blocked"),
        (conv, "spam spam"),
        ("conv_missing", "nowhere"),
    ]
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        # Unordered: in order, the first failure would stop the rest of the conversation.
        outcomes = await collect(client, items, ordered=False)
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == list(range(len(items)))
    assert len(outcomes) == len(items)
    assert [by_index[i].ok for i in range(3)] == [True, True, True]
    assert by_index[1].key == "k-1"
    assert by_index[2].key == "k-2"
    assert by_index[2].item is items[2]
    for i in (3, 4, 5, 6):
        assert isinstance(by_index[i].error, InvalidRequestError)
        assert by_index[i].kind == "invalid"
    assert isinstance(by_index[7].error, ConflictError)
    assert by_index[7].kind == "read_only_conversation"
    assert isinstance(by_index[8].error, PermissionDeniedError)
    assert by_index[8].kind == "message_policy_blocked"
    assert isinstance(by_index[9].error, NotFoundError)
    assert [m["content"] for m in server.messages(conv)] == ["tuple", "mapping", "attrs"]
    assert len(server.sends) == 6


async def test_429_is_never_final_while_hints_stay_under_the_cap(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """In bulk, 429s beyond the retry budget do not end an input: it waits each hint
    and is delivered; nothing is sent twice."""
    conv = server.add_conversation()
    server.throttle_next(9, retry_after=0.02)
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_retries=2
    ) as client:
        outcomes = await collect(client, [(conv, "first"), (conv, "second")], concurrency=1)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert [m["content"] for m in server.messages(conv)] == ["first", "second"]
    assert server.stats()["rate_limited"] == 9
    assert len([w for w in no_wait.sleeps if w >= 0.02]) >= 9  # every hint was waited out


async def test_429_hint_above_max_retry_after_is_an_outcome(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A hint longer than max_retry_after is not waited: that input's outcome is
    rate_limited, and the rest go on."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=500)
    async with make_client(
        server, clock=no_wait.clock, sleep=no_wait.sleep, max_retry_after=60
    ) as client:
        outcomes = await collect(client, [(conv, "first")], concurrency=1)
        outcomes += await collect(client, [(conv, "second")], concurrency=1)
    assert isinstance(outcomes[0].error, RateLimitError)
    assert outcomes[0].kind == "rate_limited"
    assert outcomes[1].ok
    assert all(w < 60 for w in no_wait.sleeps)


async def test_async_iterable_input(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """An async generator of inputs works like a list."""
    conv = server.add_conversation()

    async def items() -> AsyncIterator[tuple[str, str]]:
        for i in range(25):
            yield conv, f"m{i}"

    outcomes = await collect(client, items())
    assert sorted(o.index for o in outcomes) == list(range(25))
    assert all(o.ok for o in outcomes)
    assert len(server.messages(conv)) == 25


async def test_input_is_pulled_lazily(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """Inputs are pulled only as capacity frees: never more than consumed + 2 * concurrency
    (unordered; in order, inputs parked behind their conversation add a bounded read-ahead,
    see test_bulk_order)."""
    conv = server.add_conversation()
    pulled = 0

    def endless() -> Iterator[tuple[str, str]]:
        nonlocal pulled
        while True:
            pulled += 1
            yield conv, f"m{pulled}"

    consumed = 0
    async with client.send_many(endless(), concurrency=4, ordered=False) as outcomes:
        async for outcome in outcomes:
            assert outcome.ok
            consumed += 1
            assert pulled <= consumed + 2 * 4
            if consumed == 30:
                break
    assert client.stats.requests <= 30 + 2 * 4
    await assert_nothing_more_is_sent(server, client, conv)


async def test_break_without_context_manager_stops_sending(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain `async for ... break` cancels in-flight work; nothing is sent afterwards."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=0.01)
    items = ((conv, f"m{i}") for i in range(10_000))
    async for outcome in client.send_many(items, concurrency=8):
        assert outcome.ok
        break
    gc.collect()
    assert client.stats.requests <= 1 + 2 * 8
    await assert_nothing_more_is_sent(server, client, conv)
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.ERROR]


async def test_cancelling_the_consumer_cancels_the_sends(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Cancelling the task that iterates stops the bulk send cleanly."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=0.01)
    first = asyncio.Event()

    async def consume() -> None:
        async with client.send_many(((conv, f"m{i}") for i in range(10_000)), concurrency=4) as it:
            async for _ in it:
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_nothing_more_is_sent(server, client, conv)


async def test_failing_input_iterable_is_reported_after_its_items(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """If the caller's iterable raises, items already pulled still get outcomes, then it raises."""
    conv = server.add_conversation()

    def broken() -> Iterator[tuple[str, str]]:
        yield conv, "one"
        yield conv, "two"
        raise RuntimeError("input file truncated")

    seen: list[SendOutcome] = []

    async def consume() -> None:
        async for outcome in client.send_many(broken()):
            seen.append(outcome)

    with pytest.raises(RuntimeError, match="truncated"):
        await consume()
    assert sorted(o.index for o in seen) == [0, 1]


async def test_send_all_reports_counts_and_failures(
    server: FakeOpenTrain, client: OpenTrainClient, no_wait: FakeTime
) -> None:
    """send_all returns totals by kind and the failed inputs for a later retry, and the
    time the batch took on the client's clock."""
    conv = server.add_conversation()
    blocked = server.add_conversation(send_block="message_blocked")
    seen: list[int] = []

    async def on_outcome(outcome: SendOutcome) -> None:
        seen.append(outcome.index)
        no_wait.advance(0.25)  # each outcome takes a quarter second of the batch

    items = [(conv, "a"), (blocked, "b"), (conv, ""), (conv, "c")]
    # on_failure="continue": in order, the invalid input would stop "c" (its conversation)
    report = await client.send_all(items, on_outcome=on_outcome, on_failure="continue")
    assert (report.total, report.sent, report.failed) == (4, 2, 2)
    assert report.counts == {"sent": 2, "message_blocked": 1, "invalid": 1}
    assert sorted(o.index for o in report.failures) == [1, 2]
    assert sorted(seen) == [0, 1, 2, 3]
    assert report.elapsed == pytest.approx(1.0)


@pytest.mark.parametrize("fault", [Fault.RESET_AFTER_COMMIT, Fault.BAD_GATEWAY_AFTER_COMMIT])
async def test_committed_send_is_found_by_read_back_not_resent(
    server: FakeOpenTrain, client: OpenTrainClient, fault: Fault
) -> None:
    """After a fault past commit, read-back finds the message: delivered once, no resend."""
    conv = server.add_conversation()
    server.inject_fault(fault, count=1)
    (outcome,) = await collect(client, [(conv, "hello")])
    assert outcome.ok
    assert outcome.reconciled
    assert [m["id"] for m in server.messages(conv)] == [outcome.message.id]  # type: ignore[union-attr]
    assert len(server.sends) == 1
    assert [r.method for r in server.requests] == ["POST", "GET"]


@pytest.mark.parametrize("fault", [Fault.RESET_BEFORE_COMMIT, Fault.BAD_GATEWAY_BEFORE_COMMIT])
async def test_uncommitted_send_is_resent_after_read_back(
    server: FakeOpenTrain, client: OpenTrainClient, fault: Fault
) -> None:
    """After a fault before commit, read-back finds nothing and the message is resent once."""
    conv = server.add_conversation()
    server.inject_fault(fault, count=1)
    (outcome,) = await collect(client, [(conv, "hello")])
    assert outcome.ok
    assert not outcome.reconciled
    assert len(server.messages(conv)) == 1
    assert [r.method for r in server.requests] == ["POST", "GET", "POST"]


async def test_identical_earlier_message_is_not_mistaken_for_ours(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Identical content this client already delivered is not claimed again: it is resent."""
    conv = server.add_conversation()
    await client.send_message(conv, "same")
    server.inject_fault(Fault.RESET_BEFORE_COMMIT, count=1)
    (outcome,) = await collect(client, [(conv, "same")])
    assert outcome.ok
    assert not outcome.reconciled
    assert len(server.messages(conv)) == 2


async def test_unreadable_conversation_gives_delivery_unknown(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Where read-back is impossible the outcome is DeliveryUnknownError, never a resend."""
    conv = server.add_conversation(readable=False)
    server.inject_fault(Fault.RESET_AFTER_COMMIT, count=1)
    (outcome,) = await collect(client, [(conv, "hello")])
    assert isinstance(outcome.error, DeliveryUnknownError)
    assert outcome.kind == "delivery_unknown"
    assert "could not be read back" in str(outcome.error)
    assert len(server.sends) == 1


async def test_timeout_waits_before_reading_back(server: FakeOpenTrain, no_wait: FakeTime) -> None:
    """After a timeout the client gives the server reconcile_delay before reading back."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    async with make_client(
        server, timeout=0.2, clock=no_wait.clock, sleep=no_wait.sleep, reconcile_delay=2.5
    ) as client:
        message = await client.send_message(conv, "hello", reconcile=True)
    assert message.content == "hello"
    assert 2.5 in no_wait.sleeps
    assert len(server.messages(conv)) == 1


async def test_faults_on_a_quarter_of_sends_lose_and_duplicate_nothing(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """With 25% of sends failing before or after commit, every message lands exactly once."""
    convs = [server.add_conversation() for _ in range(5)]
    server.inject_fault(Fault.RESET_AFTER_COMMIT, probability=0.125)
    server.inject_fault(Fault.BAD_GATEWAY_BEFORE_COMMIT, probability=0.125)
    items = [(convs[i % 5], f"message {i}") for i in range(200)]
    outcomes = await collect(client, items)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert len(outcomes) == 200
    stored = [m["content"] for c in convs for m in server.messages(c)]
    assert sorted(stored) == sorted(content for _, content in items)
    assert server.stats()["duplicates"] == 0
    assert sum(o.reconciled for o in outcomes) > 0


async def test_bulk_without_reconcile_reports_unknown(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """reconcile=False leaves an unknown outcome as DeliveryUnknownError, unsent again."""
    conv = server.add_conversation()
    server.inject_fault(Fault.RESET_AFTER_COMMIT, count=1)
    (outcome,) = await collect(client, [(conv, "x")], reconcile=False)
    assert isinstance(outcome.error, DeliveryUnknownError)
    assert isinstance(outcome.error, OpenTrainError)


def test_concurrency_must_be_positive(server: FakeOpenTrain) -> None:
    """send_many refuses a concurrency below 1."""
    client = make_client(server)
    with pytest.raises(ValueError, match="concurrency"):
        client.send_many([], concurrency=-1)


async def test_find_own_message_settles_a_crashed_send(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """find_own_message finds our committed message after `since` and not older ones."""
    conv = server.add_conversation()
    sent = await client.send_message(conv, "from a crashed run")
    other = await client.find_own_message(conv, "never sent", since=0)
    assert other is None
    fresh = OpenTrainClient(server.token, server.base_url)
    async with fresh:
        found = await fresh.find_own_message(conv, "from a crashed run", since=0)
        assert found is not None
        assert found.id == sent.id
        again = await fresh.find_own_message(conv, "from a crashed run", since=0)
        assert again is None
        future = await OpenTrainClient(server.token, server.base_url).__aenter__()
        try:
            late = await future.find_own_message(conv, "from a crashed run", since=4e9)
        finally:
            await future.close()
        assert late is None


async def test_aclose_from_another_task_ends_the_consumer(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """aclose() called elsewhere wakes a consumer waiting for the next outcome: the loop ends."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=30)
    outcomes = client.send_many(((conv, f"m{i}") for i in range(100)), concurrency=2, ordered=False)
    seen: list[SendOutcome] = []

    async def consume() -> None:
        async for outcome in outcomes:
            seen.append(outcome)

    consumer = asyncio.create_task(consume())
    # Both sends on the wire (stalled by the server); polls a counter, never waits on time.
    while client.in_flight < 2:  # noqa: ASYNC110 - the client exposes no event for this
        await asyncio.sleep(0)
    await outcomes.aclose(grace=0)  # the sends stall for 30 s: no grace
    await asyncio.wait_for(consumer, 5)
    assert seen == []
    assert client.stats.requests == 2


async def test_invalid_mapping_keeps_its_key(client: OpenTrainClient) -> None:
    """An invalid mapping input still carries the caller's key, for correlation."""
    (outcome,) = await collect(client, [{"conversationId": "c1", "content": "", "key": 7}])
    assert outcome.kind == "invalid"
    assert outcome.key == "7"


def test_zero_concurrency_is_refused(server: FakeOpenTrain) -> None:
    """concurrency=0 is an error, not a silent fallback to the default."""
    client = make_client(server)
    with pytest.raises(ValueError, match="concurrency"):
        client.send_many([], concurrency=0)


async def test_claimed_ids_are_never_matched_by_read_back(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Ids passed to claim_ids (say, a journal's deliveries) are skipped by read-back, live."""
    conv = server.add_conversation()
    first = await client.send_message(conv, "same text")
    journal: set[str] = set()
    async with make_client(server) as resumed:
        resumed.claim_ids(journal)
        journal.add(first.id)  # added after registering: still honoured
        assert await resumed.find_own_message(conv, "same text", since=0) is None
        second = await client.send_message(conv, "same text")
        found = await resumed.find_own_message(conv, "same text", since=0)
    assert found is not None
    assert found.id == second.id


async def test_send_all_with_faults_counts_reconciled_and_sync_callback(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """send_all (workers report straight into the report) accounts for every input
    exactly once under faults, counts read-back deliveries, and takes a plain callback."""
    convs = [server.add_conversation() for _ in range(4)]
    server.inject_fault(Fault.RESET_AFTER_COMMIT, probability=0.25)
    items = [(convs[i % 4], f"message {i}") for i in range(120)]
    seen: list[int] = []
    report = await client.send_all(items, on_outcome=lambda o: seen.append(o.index))
    assert sorted(seen) == list(range(120))
    assert (report.total, report.sent, report.failed) == (120, 120, 0)
    assert report.counts == {"sent": 120}
    assert 0 < report.reconciled < 120
    assert server.stats()["duplicates"] == 0


@pytest.mark.parametrize("error", [KeyError("journal full"), asyncio.CancelledError()])
async def test_send_all_stops_when_the_callback_raises(
    server: FakeOpenTrain, client: OpenTrainClient, error: BaseException
) -> None:
    """Any exception from on_outcome (CancelledError too) ends the batch: it propagates,
    the workers stop and nothing more is sent."""
    conv = server.add_conversation()
    calls = 0

    def on_outcome(outcome: SendOutcome) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise error

    with pytest.raises(type(error)):
        await client.send_all(
            ((conv, f"m{i}") for i in range(1000)), concurrency=3, on_outcome=on_outcome
        )
    assert client.stats.requests < 3 + 2 * 3
    assert client.in_flight == 0
    await assert_nothing_more_is_sent(server, client, conv)


async def test_send_all_raises_a_failing_input_after_its_items(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """If the input iterable fails, the inputs pulled before it are still sent."""
    conv = server.add_conversation()

    async def broken() -> AsyncIterator[tuple[str, str]]:
        yield conv, "one"
        yield conv, "two"
        raise RuntimeError("input file truncated")

    with pytest.raises(RuntimeError, match="truncated"):
        await client.send_all(broken())
    assert sorted(m["content"] for m in server.messages(conv)) == ["one", "two"]


async def test_cancelling_send_all_stops_its_workers(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Cancelling the task awaiting send_all cancels the in-flight sends; none start after."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=30)
    task = asyncio.create_task(
        client.send_all(((conv, f"m{i}") for i in range(100)), concurrency=2, ordered=False)
    )
    while client.in_flight < 2:  # noqa: ASYNC110 - the client exposes no event for this
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.in_flight == 0
    await assert_nothing_more_is_sent(server, client, conv)


async def test_send_all_refuses_zero_concurrency(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """send_all, like send_many, refuses a concurrency below 1 before sending anything."""
    conv = server.add_conversation()
    with pytest.raises(ValueError, match="concurrency"):
        await client.send_all([(conv, "x")], concurrency=0)
    assert server.sends == []


async def test_two_consumers_share_one_stream(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Two tasks reading one send_many each get distinct outcomes, and both see the end."""
    conv = server.add_conversation()
    outcomes = client.send_many([(conv, f"m{i}") for i in range(50)], concurrency=3)
    seen: list[list[int]] = [[], []]

    async def consume(into: list[int]) -> None:
        async for outcome in outcomes:
            into.append(outcome.index)
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(consume(seen[0]), consume(seen[1])), 10)
    assert sorted(seen[0] + seen[1]) == list(range(50))
    assert seen[0]
    assert seen[1]


async def test_async_callbacks_of_send_all_never_overlap(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """An async on_outcome sees outcomes one at a time, though workers send concurrently."""
    conv = server.add_conversation()
    active = peak = calls = 0

    async def on_outcome(outcome: SendOutcome) -> None:
        nonlocal active, peak, calls
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        active -= 1
        calls += 1

    report = await client.send_all(
        [(conv, f"m{i}") for i in range(60)], on_outcome=on_outcome, ordered=False
    )
    assert (report.sent, calls, peak) == (60, 60, 1)
    assert server.peak_in_flight > 1


@pytest.mark.parametrize("n", [0, 1, 5])
async def test_every_consumer_of_a_shared_stream_sees_its_end(
    server: FakeOpenTrain, client: OpenTrainClient, n: int
) -> None:
    """However the outcomes split between two consumers, neither hangs at the end."""
    conv = server.add_conversation()
    outcomes = client.send_many([(conv, f"m{i}") for i in range(n)], concurrency=3)

    async def consume() -> int:
        return len([o async for o in outcomes])

    a, b = await asyncio.wait_for(asyncio.gather(consume(), consume()), 10)
    assert a + b == n


async def test_aclose_elsewhere_ends_all_consumers_quietly_after_an_input_error(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """After aclose() the loops just end, even though the input had failed meanwhile."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, delay=30)

    def items() -> Iterator[tuple[str, str]]:
        yield conv, "a"
        yield conv, "b"
        raise RuntimeError("input broke")

    outcomes = client.send_many(items(), concurrency=3, ordered=False)

    async def consume() -> int:
        return len([o async for o in outcomes])

    consumers = [asyncio.create_task(consume()) for _ in range(2)]
    while client.in_flight < 2:  # noqa: ASYNC110 - the client exposes no event for this
        await asyncio.sleep(0)
    await outcomes.aclose(grace=0)  # the sends stall for 30 s: no grace
    assert await asyncio.wait_for(asyncio.gather(*consumers), 5) == [0, 0]


PAUSE = PacingTuning().max_pause - 1e-9
"""The pacer's first pause on a rounded hint (less a float's rounding)."""


async def _bulk_send_times(hint: float, throttled: int = 1, **options: Any) -> list[float]:
    """Virtual times at which the server got each attempt of one bulk input whose first
    ``throttled`` attempts were answered 429 with ``hint`` (injected clock and sleep)."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()
        server.throttle_next(throttled, retry_after=hint)
        async with make_client(server, clock=time.clock, sleep=time.sleep, **options) as client:
            outcomes = await collect(client, [(conv, "only")], concurrency=1)
        assert [o.ok for o in outcomes] == [True], [o.error for o in outcomes]
        assert [m["content"] for m in server.messages(conv)] == ["only"]
        assert server.stats()["rate_limited"] == throttled
        return [s.received_at for s in server.sends]


async def test_rounded_one_second_hint_is_retried_at_the_pacers_admission() -> None:
    """A whole-second hint of 1 means "within the second": a bulk input 429'd with it is
    retried when the pacer admits it (after its short pause), not a full second later,
    which in a job's last second would add up to a second to the job."""
    first, retry = await _bulk_send_times(1)
    assert PAUSE <= retry - first < 1.0


async def test_rounded_hints_back_to_back_are_the_pacers_and_never_final() -> None:
    """Nine 1 s hints in a row against a retry budget of 2: each retry within the budget
    is the pacer's, its short pause doubling while the 429s come back to back (a bucket's
    next token is due well within the second); past the budget the engine's resends wait
    the hint out (at most a second apart), and the input still gets through exactly once."""
    times = await _bulk_send_times(1, throttled=9, max_retries=2)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 9
    assert PAUSE <= gaps[0] < gaps[1] < gaps[2] < 1.0
    assert all(1.0 <= gap <= 1.1 for gap in gaps[3:])


async def test_without_retries_every_rounded_hint_is_still_the_pacers() -> None:
    """With max_retries=0 the bulk loop makes every retry itself: each is the pacer's
    all the same, its pause doubling up to the hint's second and no further."""
    times = await _bulk_send_times(1, throttled=6, max_retries=0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert PAUSE <= gaps[0] < gaps[1] < gaps[2] < 1.0
    assert max(gaps) <= 1.0 + 1e-9


@pytest.mark.parametrize("hint", [0.3, 2])
async def test_exact_and_window_hints_are_still_waited_out_in_bulk(hint: float) -> None:
    """An exact (fractional) hint is waited exactly, a whole hint of 2 s or more (a
    window's, saying when it resets) in full: retrying earlier only draws another 429."""
    first, retry = await _bulk_send_times(hint)
    assert hint <= retry - first <= hint * 1.1 + PacingTuning().max_pause


async def test_one_shot_send_still_waits_a_rounded_hint_in_full() -> None:
    """Outside bulk a 429 can end the request after max_retries, so each retry keeps
    waiting the whole hint: the retry budget spans at least that many hints."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=1)
        async with make_client(server, clock=time.clock, sleep=time.sleep) as client:
            await client.send_message(conv, "hi")
        first, retry = (s.received_at for s in server.sends)
    assert retry - first >= 1.0


async def test_each_input_gets_its_own_early_retry() -> None:
    """Once the retry budget is spent, the engine's own wait for a rounded second is
    the pacer's too, but the input's later retries (its resend's) wait every hint; the
    next input's first 429 is the pacer's again."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()

        async def throttle_each(item: Any) -> None:
            server.throttle_next(3 if item[1] == "first" else 1, retry_after=1)

        async with make_client(server, clock=time.clock, sleep=time.sleep, max_retries=1) as client:
            outcomes = await collect(
                client,
                [(conv, "first"), (conv, "second")],
                concurrency=1,
                before_send=throttle_each,
            )
        assert all(o.ok for o in outcomes)
        assert [m["content"] for m in server.messages(conv)] == ["first", "second"]
        times = [s.received_at for s in server.sends]
    assert len(times) == 6
    early, engine_wait, late_retry, _, second_early = (b - a for a, b in itertools.pairwise(times))
    assert PAUSE <= early < engine_wait < 1.0
    assert late_retry >= 1.0
    assert second_early < 1.0
