"""A bug under the bulk engine (``deliver`` raising something that is no
``OpenTrainError``) never loses an input: it is that input's outcome, an
``OpenTrainError`` chained to the bug, and every other input still gets its own."""

from __future__ import annotations

from datetime import datetime, timezone

from opentrain_async import Message, OpenTrainError, RetryPolicy
from opentrain_async._bulk import BulkSend, run_batch

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


async def deliver(
    conversation_id: str, content: str, reconcile: bool, gate: object = None, paced: bool = False
) -> tuple[Message, bool]:
    if content == "bug":
        raise KeyError("a bug in a layer below")
    return Message(id=f"m-{content}", conversation_id=conversation_id, created_at=NOW), False


ITEMS = [("c1", "a"), ("c2", "bug"), ("c1", "b"), ("c3", "c")]


async def test_an_unexpected_exception_is_that_inputs_outcome() -> None:
    outcomes = [
        o
        async for o in BulkSend(
            deliver, ITEMS, policy=RetryPolicy(), concurrency=2, reconcile=False
        )
    ]
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3]
    (failed,) = [o for o in outcomes if not o.ok]
    assert failed.index == 1
    assert isinstance(failed.error, OpenTrainError)
    assert isinstance(failed.error.__cause__, KeyError)


async def test_send_all_counts_the_unexpected_exception_as_a_failure() -> None:
    report = await run_batch(
        deliver, ITEMS, policy=RetryPolicy(), concurrency=2, reconcile=False, on_outcome=None
    )
    assert (report.sent, report.failed) == (3, 1)
    assert [o.index for o in report.failures] == [1]
