"""A small job that meets a 429 early: the pace it shows is the one it keeps, and it
does not slow to a crawl.

In a window's mode (a hint said when the window resets) the pacer sets the rate curve
aside and sends each window's allowance at its reset; the curve, never frozen by a
reservation there, went on doubling, and ``describe()`` (and the
``opentrain.pacer.rate`` gauge) read it: "565,957/s (learned)" beside a learned limit
of 0.5/s.  Virtual time throughout (no real waiting).
"""

from __future__ import annotations

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime, FixedWindow, TokenBucket


def _rate_shown(description: str) -> float:
    """The rate in a ``describe()`` text ("... 12/s (learned)")."""
    return float(description.rsplit("/s", 1)[0].rsplit(" ", 1)[-1].replace(",", ""))


async def test_the_rate_shown_in_a_windows_mode_is_the_windows_average() -> None:
    """One send per 2 s window, 7 sends 8 at a time: every pace shown while the job
    runs (at each accepted send) stays within the limits the learned state holds, near
    the server's 0.5/s, never the free-running curve's tens of thousands per second."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(FixedWindow(limit=1, window=2.0))
        convs = [server.add_conversation() for _ in range(7)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=time.clock, sleep=time.sleep, max_concurrency=8
        ) as client:
            pacer = client.pacer
            shown: list[tuple[float, float, str]] = []
            on_success = pacer.on_success

            def watch(sent_at: float) -> None:
                on_success(sent_at)
                state = pacer.state
                if state.limit is not None and state.window_hint:
                    shown.append((_rate_shown(pacer.describe()), state.limit, pacer.describe()))

            pacer.on_success = watch  # type: ignore[method-assign]
            report = await client.send_all([(c, "x") for c in convs])
    assert report.sent == 7
    assert shown  # the window's mode was reached while sends were accepted
    for rate, limit, description in shown:
        assert rate <= limit, (description, limit)
    assert all(rate <= 2.0 for rate, _, _ in shown[-3:]), shown  # the server allows 0.5/s
    assert shown[-1][2] == "0.5/s (learned)"  # not "0/s": two significant figures


async def test_four_messages_with_one_early_rounded_429_do_not_crawl() -> None:
    """A 4-line job whose first send is answered 429 with a rounded 1 s hint: the rest
    go at once (the server accepts them), not at one per two seconds."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        convs = [server.add_conversation() for _ in range(4)]
        server.throttle_next(1, retry_after=1)
        async with OpenTrainClient(
            server.token, server.base_url, clock=time.clock, sleep=time.sleep
        ) as client:
            start = time.clock()
            report = await client.send_all([(c, "x") for c in convs])
            elapsed = time.clock() - start
            rate = client.pacer.current_rate()
            limit = client.pacer.state.limit
    assert report.sent == 4
    assert elapsed < 1.5, elapsed  # at most the hint's second, not 2 s per send
    assert limit is not None
    assert limit >= 1
    assert rate is not None
    assert rate <= 1_000 * limit


async def test_four_messages_into_a_bucket_with_rounded_hints_go_at_its_rate() -> None:
    """A bucket of 2/s (hints rounded up to whole seconds): the four finish about when
    the bucket allows them ((4 - 1) / 2 = 1.5 s), well before 0.5/s would (6 s)."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(TokenBucket(rate=2.0, burst=1, integer_hints=True))
        convs = [server.add_conversation() for _ in range(4)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=time.clock, sleep=time.sleep
        ) as client:
            start = time.clock()
            report = await client.send_all([(c, "x") for c in convs])
            elapsed = time.clock() - start
    assert report.sent == 4
    assert elapsed < 3.0, elapsed


async def test_a_buckets_burst_does_not_hold_the_job_behind_it() -> None:
    """A bucket of 2/s with a burst of 8 and rounded hints: twelve sends 32 at a time
    end about when the bucket allows ((12 - 8) / 2 = 2 s), with at most two 429s per
    message.  The first estimate reads the burst as a rate (80/s); before, the refused
    retries slept whole seconds behind it and the job took 3.5 s.  (The rate the pacer
    shows at the end depends on how many 429s it met, which the event loop's order
    changes between Python versions: 6.8/s on 3.11, 127/s on 3.12 after six 429s; the
    search's restart itself is tested in ``test_pacing_search_again.py``.)"""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock, now=time.datetime) as server:
        server.set_rate_limit(TokenBucket(rate=2.0, burst=8, integer_hints=True))
        convs = [server.add_conversation() for _ in range(12)]
        async with OpenTrainClient(
            server.token, server.base_url, clock=time.clock, sleep=time.sleep, max_concurrency=32
        ) as client:
            start = time.clock()
            report = await client.send_all([(c, "x") for c in convs])
            elapsed = time.clock() - start
        refused = server.stats()["rate_limited"]
    assert report.sent == 12
    assert elapsed <= 2.5, elapsed
    assert refused <= 24, refused
