"""A grant that expires while its send waits in line for a connection slot: given back
and paced anew, as often as it takes, from a stack that does not grow.  More sends at
once than ``max_concurrency`` to a slow server wait for a slot longer than a grant
lives; each time a slot frees, every one still in line has expired and goes round
again.  Taken again by recursion (``attempt`` inside ``attempt``), a send that went
round a few hundred times raised ``RecursionError`` (600 sends, one slot, a 1.5 s
server: 107 of them), no ``OpenTrainError``.  Over loopback on virtual time: each
answer takes 1.5 s of it (an aiohttp trace moves the clock as the request ends)."""

from __future__ import annotations

import asyncio
import sys
from types import FrameType

import aiohttp

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

LATENCY = 1.5  # virtual seconds per answer: longer than a grant lives (~1 s)


def depth(frame: FrameType | None) -> int:
    """How many frames deep ``frame`` is (the awaiting coroutines included)."""
    n = 0
    while frame is not None:
        n, frame = n + 1, frame.f_back
    return n


async def sends_in_line(n: int, rate_limit: float | None) -> tuple[list[object], list[int], int]:
    """``n`` sends at once on one connection slot to a slow server: their results, the
    stack's depth at each request's start, and the messages the server stored."""
    time = FakeTime()
    depths: list[int] = []

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
            results = await asyncio.gather(
                *(client.send_message(conv, f"m{i}") for i, conv in enumerate(convs)),
                return_exceptions=True,
            )
        stored = sum(len(server.messages(conv)) for conv in convs)
    return results, depths, stored


async def test_sends_that_expire_in_line_go_round_on_a_stack_that_does_not_grow() -> None:
    """40 sends, one slot: the last goes round dozens of times before its turn; each is
    sent once, and the request starts as deep in the stack as the first did."""
    results, depths, stored = await sends_in_line(40, rate_limit=None)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert stored == 40
    assert max(depths) - min(depths) <= 4, (min(depths), max(depths))


async def test_paced_sends_that_expire_in_line_are_each_sent_once() -> None:
    """The same at a stated 1000/s: each expired grant waits for a slot of the pace."""
    results, depths, stored = await sends_in_line(40, rate_limit=1000.0)
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert stored == 40
    assert max(depths) - min(depths) <= 4, (min(depths), max(depths))
