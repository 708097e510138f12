"""A pacer's grant expires: one held past its deadline (its process stopped, or starved,
between the grant and the write) is given back and paced anew, not sent into a pause
another pacer learned meanwhile or into the next window.  Over loopback on virtual
time; the stall is a read holding the client's one connection slot, the clock moved
by hand while the send waits behind it (as across SIGSTOP: the process, not the
pacer, is stopped)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from opentrain_async import OpenTrainClient, RateLimitError
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async.testing import FakeOpenTrain, FakeTime, FixedWindow

from .conftest import make_client
from .pacing_kit import known_window
from .waiting import until

STALL = 1.0  # real seconds the read holds the connection slot (the send waits behind it)


def client(
    server: FakeOpenTrain, time: FakeTime, inner: InMemoryPacingBackend, **options: object
) -> OpenTrainClient:
    """A process's client on the shared in-memory pacing state, on virtual time."""
    return make_client(server, clock=time.clock, sleep=time.sleep, pacing_backend=inner, **options)


async def held_sends(
    server: FakeOpenTrain, mine: OpenTrainClient, conv: str, n: int, granted: Callable[[], bool]
) -> tuple[asyncio.Future[list[object]], list[asyncio.Task[object]]]:
    """``n`` sends granted and held behind ``n`` stalled reads (``max_concurrency=n``:
    they wait for a connection slot), so that all of them go when the reads end."""
    server.script("GET /messages", delay=STALL, times=n)
    reads = asyncio.gather(*(mine.list_conversations() for _ in range(n)))
    await until(lambda: server.in_flight == n, f"{n} sends on the wire")
    sends: list[asyncio.Task[object]] = [
        asyncio.create_task(mine.send_message(conv, f"held {i}")) for i in range(n)
    ]
    await until(granted, "the grants")
    return reads, sends


def received(server: FakeOpenTrain, prefix: str) -> list[float]:
    return [r.received_at for r in server.sends if str(r.json["content"]).startswith(prefix)]


async def test_a_grant_held_past_its_deadline_waits_out_a_pause_learned_meanwhile() -> None:
    """Paced at a stated 10/s, a send is granted, then its process stops for 3 s; another
    process sharing the state draws a 429 of 2.5 s meanwhile.  Resumed, the send does
    not go into that pause: its grant expired, it asks again and waits it out."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        conv = server.add_conversation()
        inner = InMemoryPacingBackend(clock=time.clock)
        async with (
            client(server, time, inner, rate_limit=10, max_concurrency=1) as mine,
            client(server, time, inner, rate_limit=10, max_retries=0) as other,
        ):
            read, sends = await held_sends(
                server, mine, conv, 1, lambda: inner.state.tat > -math.inf
            )
            time.advance(3.0)  # stopped holding its grant
            server.throttle_next(1, retry_after=2.5)
            with pytest.raises(RateLimitError):
                await other.send_message(conv, "other")
            pause_end = inner.state.pause_until
            assert pause_end == pytest.approx(time.now + 2.5)
            await read
            await asyncio.gather(*sends)
    (sent,) = received(server, "held")
    assert sent >= pause_end
    assert len(server.messages(conv)) == 1  # once


async def test_a_grant_within_its_deadline_goes_as_granted() -> None:
    """Held half a second (within its deadline), the grant goes when the slot frees:
    no second grant is taken for it."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        conv = server.add_conversation()
        inner = InMemoryPacingBackend(clock=time.clock)
        async with client(server, time, inner, rate_limit=10, max_concurrency=1) as mine:
            read, sends = await held_sends(
                server, mine, conv, 1, lambda: inner.state.tat > -math.inf
            )
            time.advance(0.5)
            resumed = time.now
            await read
            await asyncio.gather(*sends)
    assert received(server, "held") == [resumed]
    assert sum(inner.state.offered) == 1


async def test_window_grants_held_past_the_next_reset_are_not_sent_into_it() -> None:
    """A window of 4 per 2 s: a process takes the whole W at a reset and stops holding it.
    Another's probe is refused with the time to the next reset, and at that reset it
    sends the new window's W.  Resumed, the first process's four grants do not land in
    that window too (8 sends in a window of 4 before): it sees W + 1 (a probe) at most,
    and every message is delivered once."""
    time = FakeTime(start=1000.0)
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(FixedWindow(4, 2.0))  # resets at 1000 + 2k
        conv = server.add_conversation()
        time.advance(2.0)  # 1002: a reset, the window known
        inner = InMemoryPacingBackend(clock=time.clock)
        inner.state = known_window(4, 2.0, reset=1002.0)
        async with (
            client(server, time, inner, max_concurrency=4) as mine,
            client(server, time, inner, max_retries=0) as other,
        ):
            read, sends = await held_sends(server, mine, conv, 4, lambda: inner.state.win_sent == 4)
            # The other process's probe, past W: refused, with the time to the reset.
            server.throttle_next(1, retry_after=0.97)
            with pytest.raises(RateLimitError):
                await other.send_message(conv, "probe")
            time.advance(1004.5 - time.now)
            await asyncio.gather(*(other.send_message(conv, f"other {i}") for i in range(4)))
            await read
            await asyncio.gather(*sends)
    window = [t for t in received(server, "") if 1004.0 <= t < 1006.0]
    assert len(window) <= 4 + 1
    assert len(received(server, "other")) == 4
    contents = [m["content"] for m in server.messages(conv)]
    assert sorted(c for c in contents if c.startswith("held")) == [f"held {i}" for i in range(4)]
