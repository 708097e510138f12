"""What a bulk caller reads: a closed set of outcome kinds, bounded failures, no content
in any repr."""

from __future__ import annotations

import json
from typing import get_args

from opentrain_async import (
    OUTCOME_KINDS,
    OpenTrainClient,
    OutcomeKind,
    OutgoingMessage,
    SendItem,
)
from opentrain_async.testing import FakeOpenTrain

SECRET = "SALARY-REVIEW-7731"


async def test_kinds_are_closed_and_reasons_kept(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Documented reasons are kinds; a reason this SDK does not know becomes the kind of its
    status (``forbidden``) and stays readable as ``outcome.reason``."""
    conv = server.add_conversation()
    closed = server.add_conversation(send_block="read_only_conversation")
    server.fail_next(
        1,
        status=403,
        body=json.dumps(
            {"error": "no", "code": "FORBIDDEN", "details": {"reason": "brand_new_rule"}}
        ),
    )
    items: list[SendItem] = [(conv, "first"), (closed, "x"), (conv, ""), (conv, "ok")]
    outcomes = {  # on_failure="continue": in order, a failure would stop its conversation
        o.index: o async for o in client.send_many(items, concurrency=1, on_failure="continue")
    }
    assert [outcomes[i].kind for i in range(4)] == [
        "forbidden",
        "read_only_conversation",
        "invalid",
        "sent",
    ]
    assert outcomes[0].reason == "brand_new_rule"
    assert outcomes[1].reason == "read_only_conversation"
    assert outcomes[3].reason is None
    assert all(o.kind in OUTCOME_KINDS for o in outcomes.values())
    assert set(get_args(OutcomeKind)) == OUTCOME_KINDS


async def test_report_keeps_a_bounded_number_of_failures(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``keep_failures=5`` over 30 failed inputs keeps the first five, counts the other 25,
    and every failure still reaches the counts and on_outcome."""
    conv = server.add_conversation()
    seen: list[int] = []
    items = [(conv, "")] * 30 + [(conv, "fine")]
    report = await client.send_all(  # "continue": else the first "" stops the conversation
        items, keep_failures=5, on_outcome=lambda o: seen.append(o.index), on_failure="continue"
    )
    assert (report.total, report.sent, report.failed) == (31, 1, 30)
    assert report.counts["invalid"] == 30
    assert len(report.failures) == 5
    assert report.failures_dropped == 25
    assert len(seen) == 31
    default = await client.send_all([(conv, "")] * 3)
    assert (len(default.failures), default.keep_failures) == (3, 1000)


async def test_no_repr_shows_content(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """Content is logged only when asked: reprs of reports, outcomes and outgoing messages
    (sent or failed, any input shape) never contain it."""
    conv = server.add_conversation()
    closed = server.add_conversation(send_block="read_only_conversation")
    items: list[SendItem] = [
        (closed, SECRET),
        {"conversationId": closed, "content": SECRET, "key": "k1"},
        OutgoingMessage(closed, SECRET, key="k2"),
        (conv, SECRET),
    ]
    outcomes = [o async for o in client.send_many(items)]
    report = await client.send_all(items)
    texts = [repr(report), *(repr(o) for o in outcomes), repr(OutgoingMessage(conv, SECRET))]
    texts += [repr(f) for f in report.failures]
    assert not [t for t in texts if SECRET in t]
    assert any("kind='read_only_conversation'" in t for t in texts)
    assert "content=<18 chars>" in repr(OutgoingMessage(conv, SECRET))
    assert repr(OutgoingMessage(conv, 5)).endswith("content=int, key=None)")  # type: ignore[arg-type]
