"""The simulator and the real family benchmark measure the same thing.

Issue 19's goals are set on the real stack (``benchmarks.family_run``: the fake server
over loopback); the pacer is tuned in the simulator (``benchmarks.family_sim``).  What
the real stack does that the simulator did not, or that the real benchmark counted
against the client wrongly, is held here:

* the fake server sleeps a request's whole latency (and its jitter) before its limiter
  decides, and answers at once: the simulator's limiter sat half way, so the real
  limiter saw arrivals bunched twice as much as the simulated one;
* the real benchmark sent its messages over 50 conversations, and this SDK keeps order
  within a conversation: at most 50 of its sends on the wire where the ideal (and raw
  aiohttp) has 64, and m messages of a conversation no sooner than m round trips;
* each real process sends its own share of the messages: the simulator's processes
  pulled from one pool;
* a saved real run's draws are rebuilt from their seeds only if they are the same draws.
"""

from __future__ import annotations

import time
from collections import Counter

import aiohttp
import pytest

from benchmarks.family import draw, workload
from benchmarks.family_gap import rebuild
from benchmarks.family_sim import legs, run_draw
from opentrain_async import Pacer
from opentrain_async.testing import FakeOpenTrain, TokenBucket

LATENCY = 0.05


async def test_the_limiter_meets_a_request_where_the_fake_server_has_it() -> None:
    """The fake server decides after the request's whole latency; so does the simulator."""
    seen: list[float] = []

    def clock() -> float:
        seen.append(time.monotonic())
        return seen[-1]

    async with FakeOpenTrain(clock=clock, latency=LATENCY, record_requests=False) as server:
        conversation = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=1000, burst=10))
        url = server.base_url + "/api/public/v1/messages"
        headers = {"Authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            seen.clear()
            sent = time.monotonic()
            body = {"conversationId": conversation, "content": "hello"}
            async with session.post(url, json=body) as response:
                assert response.status == 201
    assert seen, "the limiter never read the server's clock"
    # asyncio's sleep never ends early: every clock read of the request (the limiter's
    # among them) comes after the whole latency.
    assert min(seen) - sent >= LATENCY * 0.99
    to_limiter, back = legs(LATENCY, 0.0, 0.0)
    assert to_limiter == pytest.approx(LATENCY)
    assert back == 0.0


@pytest.mark.parametrize("u", [-1.0, 0.0, 0.5, 1.0])
def test_the_whole_jitter_falls_before_the_limiter(u: float) -> None:
    """The server draws latency x (1 + jitter x u) and sleeps it before deciding."""
    to_limiter, back = legs(0.1, 0.4, u)
    assert to_limiter == pytest.approx(0.1 * (1 + 0.4 * u))
    assert back == 0.0


def test_the_family_workload_gives_order_nothing_to_hold_back() -> None:
    """Every message of a draw goes to its own conversation unless asked otherwise."""
    d = draw(999255724, max_window=2.0)  # 904 messages, 193 ms: 50 chains bound it
    items = workload(d, "x")
    assert len(items) == d.n
    assert len({conversation for conversation, _ in items}) == d.n
    assert len({content for _, content in items}) == d.n
    chains = Counter(conversation for conversation, _ in workload(d, "x", 50))
    assert len(chains) == 50
    assert max(chains.values()) == -(-d.n // 50)


def test_a_saved_draw_is_rebuilt_only_when_it_is_the_same() -> None:
    d = draw(999255745, max_window=2.0)  # a sliding window of 449 per 1.33 s
    saved = d.to_dict()
    saved["changes"] = [list(c) for c in saved["changes"]]  # as JSON has it
    assert rebuild(saved, max_window=2.0) == d
    with pytest.raises(ValueError, match="differ"):
        rebuild(saved, max_window=60.0)  # the simulator's default family: another draw
    with pytest.raises(ValueError, match="differ"):
        rebuild(dict(saved, n=saved["n"] + 1), max_window=2.0)


def test_each_simulated_process_sends_its_own_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """``benchmarks.processes`` hands each process ``items[i::k]``: a process that is
    through waits for the others (on the real stack 14 processes sharing a bucket ended
    7.5-9.8 s into one job).  The simulator let every process pull from one pool."""
    delivered: Counter[int] = Counter()
    on_success = Pacer.on_success

    def counted(self: Pacer, sent_at: float) -> None:
        delivered[id(self)] += 1
        on_success(self, sent_at)

    monkeypatch.setattr(Pacer, "on_success", counted)
    d = draw(999255730, max_window=2.0)  # a bucket of 718/s, burst 2, 14 processes
    result = run_draw(d)
    assert result.delivered == d.n
    shares = sorted(len(range(p, d.n, d.processes)) for p in range(d.processes))
    assert sorted(delivered.values()) == shares
