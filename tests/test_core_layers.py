"""The layers under the client work alone, over a callable or a small protocol: the bulk
engine over a ``deliver`` function, read-back and listen's lookup over any reader."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Awaitable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import opentrain_async
from opentrain_async import DeliveryUnknownError, Message, RetryPolicy
from opentrain_async._bulk import BulkSend, SendOutcome, _Engine, run_batch
from opentrain_async._delivery import ClaimedIds, find_own_message
from opentrain_async._errors import ConflictError
from opentrain_async._listen import _find_messages
from opentrain_async._pagination import AsyncPaginator
from opentrain_async._read import ReadMixin
from opentrain_async._read_models import MessagePage
from opentrain_async._time import SYSTEM_CLOCK
from opentrain_async.testing import FakeOpenTrain

from .conftest import make_client

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _message(i: int, content: str = "other") -> Message:
    return Message(id=f"m{i}", conversation_id="c1", created_at=NOW, content=content)


class CyclingReader:
    """A conversation whose cursors go None -> A -> B -> A forever, pages of newer messages."""

    def __init__(self) -> None:
        self.fetches: list[str | None] = []

    def iter_messages(self, conversation_id: str, *, limit: int = 20) -> Any:
        nxt = {None: "A", "A": "B", "B": "A"}

        async def fetch(cursor: str | None) -> MessagePage:
            self.fetches.append(cursor)
            i = len(self.fetches)
            return MessagePage(messages=(_message(i),), next_cursor=nxt[cursor])

        return AsyncPaginator(fetch, lambda page: page.messages)


async def test_read_back_over_a_cycling_reader_is_unknown_at_once() -> None:
    """Read-back needs only ``iter_messages``; a cursor cycle makes the outcome unknown
    after three pages, not after its two-minute budget, and never 'not delivered'."""
    reader = CyclingReader()
    with pytest.raises(DeliveryUnknownError, match="same cursor") as info:
        await find_own_message(
            reader,
            "c1",
            "ours",
            since=NOW.timestamp() - 60,
            claimed=ClaimedIds(),
            cause=DeliveryUnknownError("unknown"),
        )
    assert reader.fetches == [None, "A", "B"]
    assert info.value.conversation_id == "c1"


async def test_listen_lookup_over_a_cycling_reader_is_incomplete() -> None:
    """listen()'s lookup says 'could not look far enough' (retry the page) on a cycle."""
    reader = CyclingReader()
    found, complete, _ = await _find_messages(reader, "c1", {"m99"}, None)  # type: ignore[arg-type]
    assert (found, complete) == ({}, False)
    assert len(reader.fetches) == 3


async def test_the_bulk_engine_runs_over_any_deliver_callable() -> None:
    """BulkSend and run_batch need a ``deliver`` function and a retry policy, no client:
    every input gets one outcome, errors included."""
    calls: list[tuple[str, str, bool]] = []

    async def deliver(
        conversation_id: str,
        content: str,
        reconcile: bool,
        gate: object = None,
        paced: bool = False,
    ) -> tuple[Message, bool]:
        calls.append((conversation_id, content, reconcile))
        if content == "blocked":
            raise ConflictError("no", status=409, details={"reason": "read_only_conversation"})
        return _message(len(calls), content), False

    # One conversation each: in order, a failure would stop the rest of its conversation.
    items = [("c1", "a"), ("c2", "blocked"), ("c3", ""), ("c4", "b")]
    outcomes = [
        o
        async for o in BulkSend(
            deliver, items, policy=RetryPolicy(), concurrency=2, reconcile=False
        )
    ]
    assert sorted((o.index, o.kind) for o in outcomes) == [
        (0, "sent"),
        (1, "read_only_conversation"),
        (2, "invalid"),
        (3, "sent"),
    ]
    ticks = iter([10.0, 12.5])
    report = await run_batch(
        deliver,
        items,
        policy=RetryPolicy(),
        concurrency=2,
        reconcile=True,
        on_outcome=None,
        clock=lambda: next(ticks),
    )
    assert (report.sent, report.failed, report.elapsed) == (2, 2, 2.5)
    assert all(reconcile for _, _, reconcile in calls[-3:])


async def test_content_is_validated_once_on_the_way_down(
    server: FakeOpenTrain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each send entry checks the conversation id and content once (the client's
    ``send_message``, the one-shot, each bulk input); the layers under it take the
    input as checked instead of checking again."""
    checks: Counter[str] = Counter()
    for name, module in list(sys.modules.items()):
        if not name.startswith("opentrain_async"):
            continue
        for check in ("validate_content", "validate_conversation_id"):
            original = getattr(module, check, None)
            if original is None:
                continue

            def counting(value: Any, *args: Any, _f: Any = original, _c: str = check) -> Any:
                checks[_c] += 1
                return _f(value, *args)

            monkeypatch.setattr(module, check, counting)
    conv = server.add_conversation()
    async with make_client(server) as client:
        await client.send_message(conv, "one")
        assert checks == {"validate_content": 1, "validate_conversation_id": 1}
        checks.clear()
        report = await client.send_all([(conv, "two"), (conv, "three")])
        assert report.sent == 2
        assert checks == {"validate_content": 2, "validate_conversation_id": 2}
    checks.clear()
    await opentrain_async.send_message(
        conv, "four", api_token=server.token, base_url=server.base_url
    )
    assert checks == {"validate_content": 1, "validate_conversation_id": 1}


class _CannedRequester:
    """A ``Requester``: two pages of one conversation, recording every request."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> tuple[int, Any]:
        self.calls.append((method, path, dict(params or {})))
        cursor = (params or {}).get("cursor")
        created = NOW.isoformat()
        message = {"id": f"m-{cursor}", "conversationId": "c1", "createdAt": created}
        return 200, {"messages": [message], "nextCursor": None if cursor else "p2"}


async def test_the_reads_work_over_any_requester_without_a_client() -> None:
    """The read side needs only a factory of ``Requester``s (something with
    ``request``): it pages through it, and per-call options go to the factory."""
    calls: list[tuple[Any, ...]] = []
    options: list[tuple[Any, Any]] = []

    def requester(timeout: Any, max_retries: Any) -> _CannedRequester:
        options.append((timeout, max_retries))
        return _CannedRequester(calls)

    reads = ReadMixin()
    reads._init_reads(requester, SYSTEM_CLOCK, lambda: Path("unused"))
    ids = [m.id async for m in reads.iter_messages("c1", limit=5, timeout=3.0)]
    assert ids == ["m-None", "m-p2"]
    assert [c[2].get("cursor") for c in calls] == [None, "p2"]
    assert all(c[:2] == ("GET", "/messages") and c[2]["limit"] == "5" for c in calls)
    assert options == [(3.0, None), (3.0, None)]


async def test_the_bulk_engine_hands_every_outcome_to_its_sink_then_closes_it() -> None:
    """The engine under send_many and send_all with a sink of one's own: one outcome
    per input (a failure and an invalid input included), then one ``close``; an
    awaitable from ``put`` is awaited before the worker goes on."""
    received: list[SendOutcome] = []
    closed: list[bool] = []
    awaited: list[int] = []

    class ListSink:
        def put(self, outcome: SendOutcome) -> Awaitable[None] | None:
            received.append(outcome)
            if outcome.index % 2:
                return None

            async def later() -> None:
                awaited.append(outcome.index)

            return later()

        def close(self, discard: bool) -> None:
            closed.append(discard)

    async def deliver(
        conversation_id: str,
        content: str,
        reconcile: bool,
        gate: object = None,
        paced: bool = False,
    ) -> tuple[Message, bool]:
        if content == "blocked":
            raise ConflictError("no", status=409, details={"reason": "read_only_conversation"})
        return _message(len(received), content), False

    items = [("c1", "a"), ("c1", "blocked"), ("", "x"), ("c1", "b"), ("c1", "c")]
    await _Engine(deliver, RetryPolicy(), items, 2, False, ListSink()).run()
    assert sorted((o.index, o.kind) for o in received) == [
        (0, "sent"),
        (1, "read_only_conversation"),
        (2, "invalid"),
        (3, "sent"),
        (4, "sent"),
    ]
    assert sorted(awaited) == [0, 2, 4]
    assert closed == [False]
