"""Order within a conversation, recorded as the server saw it: part 3 of 5 meets a 429,
a reset after commit, a timeout after commit, a lying 2xx or an outcome that cannot be
read back; part 4 reaches the server only after everything part 3 needed did.

The fake's scripted rules are global, so the job is one conversation: its first two
sends pass through untouched rules, the third meets the fault (the adv8 round found
these held on main; they guard the README's "whatever 429s, read-backs or crashes")."""

from __future__ import annotations

from typing import Any

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .conftest import make_client


def part_3_meets(server: FakeOpenTrain, fault: str, other: str) -> None:
    """Script ``fault`` for the third send of the job (the first two pass)."""
    after_commit = fault in ("reset_after_commit", "timeout_after_commit", "unknown")
    server.script("POST /messages", times=2, after_commit=after_commit)  # pass-through
    if fault == "429":
        server.throttle_next(2, retry_after=0.5)
    elif fault == "reset_after_commit":
        server.inject_fault(Fault.RESET_AFTER_COMMIT, 1)
    elif fault == "timeout_after_commit":
        server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, 1, delay=5)
    elif fault == "lying_2xx":  # a 201 describing another conversation's message
        lie = {"id": "m_lie", "createdAt": "2026-01-01T00:00:00.000Z", "content": "no"}
        lie.update(conversationId=other, isFromViewer=True)
        server.script("POST /messages", status=201, json={"ok": True, "message": lie})
    else:  # "unknown": committed, the answer lost, the conversation unreadable
        server.inject_fault(Fault.RESET_AFTER_COMMIT, 1)
        server.script("GET /messages", status=503, times=None)


def wire(server: FakeOpenTrain) -> list[str]:
    """Every request as it arrived: ``POST part N`` (its status) or ``GET``."""
    return [
        f"POST {r.json['content']} {r.status}" if r.method == "POST" else "GET"
        for r in server.requests
    ]


async def run(server: FakeOpenTrain, time: FakeTime, **options: Any) -> list[str]:
    conv = server.add_conversation()
    part_3_meets(server, options.pop("fault"), server.add_conversation())
    client: OpenTrainClient = make_client(
        server, clock=time.clock, sleep=time.sleep, wall_clock=time.time, timeout=0.2
    )
    async with client:
        outcomes = [
            o async for o in client.send_many([(conv, f"part {k}") for k in range(1, 6)], **options)
        ]
    return [o.kind for o in sorted(outcomes, key=lambda o: o.index)]


@pytest.mark.parametrize(
    ("fault", "part_3"),
    [
        ("429", ["POST part 3 429", "POST part 3 429", "POST part 3 201"]),
        ("reset_after_commit", ["POST part 3 None", "GET"]),
        ("timeout_after_commit", ["POST part 3 None", "GET"]),
        ("lying_2xx", ["POST part 3 201", "GET", "POST part 3 201"]),
    ],
)
async def test_part_4_waits_for_everything_part_3_needed(
    server: FakeOpenTrain, no_wait: FakeTime, fault: str, part_3: list[str]
) -> None:
    kinds = await run(server, no_wait, fault=fault)
    assert kinds == ["sent"] * 5
    sent_ok = ["POST part 1 201", "POST part 2 201"]
    assert wire(server) == [*sent_ok, *part_3, "POST part 4 201", "POST part 5 201"]
    assert server.stats()["duplicates"] == 0


@pytest.mark.parametrize("on_failure", ["stop", "continue"])
async def test_an_unknown_outcome_on_part_3_is_settled_before_part_4(
    server: FakeOpenTrain, no_wait: FakeTime, on_failure: str
) -> None:
    """Part 3 committed, its answer lost and the conversation unreadable: part 3 is
    ``delivery_unknown`` (never resent on a guess); by default parts 4-5 are blocked,
    with ``on_failure="continue"`` they go, but only after part 3's last read-back."""
    kinds = await run(server, no_wait, fault="unknown", on_failure=on_failure)
    rest = ["blocked_by_earlier_failure"] * 2 if on_failure == "stop" else ["sent"] * 2
    assert kinds == ["sent", "sent", "delivery_unknown", *rest]
    arrived = wire(server)
    assert arrived[:3] == ["POST part 1 201", "POST part 2 201", "POST part 3 None"]
    reads = arrived[3 : len(arrived) - (0 if on_failure == "stop" else 2)]
    assert reads
    assert set(reads) == {"GET"}
    if on_failure == "continue":
        assert arrived[-2:] == ["POST part 4 201", "POST part 5 201"]
    assert server.stats()["duplicates"] == 0
