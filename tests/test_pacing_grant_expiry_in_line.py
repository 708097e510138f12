"""A grant that expires while its send waits in line for a connection slot: given back
and paced anew, as often as it takes, from a stack that does not grow.  More sends at
once than ``max_concurrency`` to a slow server wait for a slot longer than a grant
lives; each time a slot frees, every one still in line has expired and goes round
again.  Taken again by recursion (``attempt`` inside ``attempt``), a send that went
round a few hundred times raised ``RecursionError`` (600 sends, one slot, a 1.5 s
server: 107 of them), no ``OpenTrainError``.  And each went back to the end of the
line for a slot, where it expired again: 686 grants given back for 40 sends (175,948
for 600), each a slot of the pace (shared through Redis) that nobody used.  Over
loopback on virtual time: each answer takes 1.5 s of it (an aiohttp trace moves the
clock as the request ends)."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from types import FrameType

import aiohttp
import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

LATENCY = 1.5  # virtual seconds per answer: longer than a grant lives (~1 s)


def depth(frame: FrameType | None) -> int:
    """How many frames deep ``frame`` is (the awaiting coroutines included)."""
    n = 0
    while frame is not None:
        n, frame = n + 1, frame.f_back
    return n


@dataclass
class Line:
    """What ``n`` sends in line for one connection slot did."""

    failures: list[BaseException]
    depths: list[int]
    """The stack's depth at each request's start."""
    stored: int
    """Messages the server stored."""
    given_back: int
    """Grants given back unsent (``Pacer.give_back``)."""


async def sends_in_line(n: int, rate_limit: float | None) -> Line:
    """``n`` sends at once on one connection slot to a slow server."""
    time = FakeTime()
    depths: list[int] = []
    given_back = 0

    async def started(*_: object) -> None:
        depths.append(depth(sys._getframe()))

    async def ended(*_: object) -> None:
        time.advance(LATENCY)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(n)]
        async with (
            aiohttp.ClientSession(trace_configs=[trace]) as session,
            OpenTrainClient(
                server.token,
                server.base_url,
                session=session,
                clock=time.clock,
                sleep=time.sleep,
                max_concurrency=1,
                rate_limit=rate_limit,
                max_retries=0,
            ) as client,
        ):
            give_back = client.pacer.give_back

            def counted(admitted: float) -> None:  # (a spy: the pacer hears it as before)
                nonlocal given_back
                given_back += 1
                give_back(admitted)

            client.pacer.give_back = counted  # type: ignore[method-assign]
            results = await asyncio.gather(
                *(client.send_message(conv, f"m{i}") for i, conv in enumerate(convs)),
                return_exceptions=True,
            )
        stored = sum(len(server.messages(conv)) for conv in convs)
    failures = [r for r in results if isinstance(r, BaseException)]
    return Line(failures, depths, stored, given_back)


async def test_sends_that_expire_in_line_go_round_on_a_stack_that_does_not_grow() -> None:
    """40 sends, one slot: the last waits dozens of turns; each is sent once, and the
    request starts as deep in the stack as the first did."""
    line = await sends_in_line(40, rate_limit=None)
    assert line.failures == []
    assert line.stored == 40
    assert max(line.depths) - min(line.depths) <= 4, (min(line.depths), max(line.depths))


async def test_a_send_whose_grant_expired_in_line_takes_a_fresh_one_at_its_turn() -> None:
    """Unpaced, a send whose grant expired in line takes a fresh one at its turn and
    goes, keeping the slot: a few grants given back per send, not one per turn in line
    (686 for 40 sends before, 17 each)."""
    line = await sends_in_line(40, rate_limit=None)
    assert line.stored == 40
    assert line.given_back <= 3 * 40


async def test_paced_sends_that_expire_in_line_are_each_sent_once() -> None:
    """The same at a stated 1000/s: each expired grant waits for a slot of the pace."""
    line = await sends_in_line(40, rate_limit=1000.0)
    assert line.failures == []
    assert line.stored == 40
    assert max(line.depths) - min(line.depths) <= 4, (min(line.depths), max(line.depths))


@pytest.mark.xfail(
    strict=True,
    reason="paced, a fresh grant is taken in place only if a slot is due now and nobody "
    "waits in the pacer's line, where the other expired sends are: 199 grants given "
    "back for 40 sends (3,548 for 600), wasting a shared pace's slots",
)
async def test_paced_sends_whose_grants_expired_in_line_waste_few_slots() -> None:
    """At a stated 1000/s, the grants given back are a few per send at most."""
    line = await sends_in_line(40, rate_limit=1000.0)
    assert line.stored == 40
    assert line.given_back <= 3 * 40
