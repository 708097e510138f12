"""The limits the pacing benchmarks draw from: the fake server's sliding window and
``LimitSchedule`` (a limit that moves, its hint in any style), and the strict ideal the
benchmarks measure against.  All on injected clocks: nothing here waits."""

from __future__ import annotations

import math

import pytest

from benchmarks.family import admission_times, draw, ideal_from_server_args, strict_ideal
from opentrain_async import RateLimitError
from opentrain_async.testing import (
    ApiError,
    FakeOpenTrain,
    FakeTime,
    FixedWindow,
    LimitSchedule,
    SlidingWindow,
    TokenBucket,
    World,
)

from .conftest import make_client


def _world(limit: object) -> tuple[World, FakeTime, str]:
    time = FakeTime()
    world = World("ot_pat_a", clock=time.clock, now=time.datetime)
    world.set_rate_limit(limit)  # type: ignore[arg-type]
    return world, time, world.add_conversation()


def _try(world: World, conv: str, text: str = "x") -> ApiError | None:
    try:
        world.send(world.default, conv, text)
    except ApiError as exc:
        return exc
    return None


def test_sliding_window_counts_the_last_window_not_the_calendar() -> None:
    """3 per 1 s: sends at 0.0, 0.4, 0.8 fill it; at 1.05 only the first has left (one
    more), and the hint is exactly when the oldest leaves."""
    world, time, conv = _world(SlidingWindow(limit=3, window=1.0))
    for at in (0.0, 0.4, 0.8):
        time.now = 1000.0 + at
        assert _try(world, conv) is None
    time.now = 1000.9
    refused = _try(world, conv)
    assert refused is not None
    assert refused.status == 429
    assert refused.details["retryAfterSeconds"] == pytest.approx(0.1)
    time.now = 1001.05
    assert _try(world, conv) is None
    refused = _try(world, conv)
    assert refused is not None
    assert refused.details["retryAfterSeconds"] == pytest.approx(0.35)


def test_schedule_steps_count_from_the_first_send_and_a_hint_never_passes_a_step() -> None:
    """A bucket of 1/s that becomes 10/s two seconds after the account's first send: a
    refusal just before the change hints the change, not the old rate's next token."""
    schedule = LimitSchedule(
        ((0.0, TokenBucket(rate=1, burst=1)), (2.0, TokenBucket(rate=10, burst=1)))
    )
    world, time, conv = _world(schedule)
    time.now = 1500.0  # long after the server started: the schedule starts here
    assert _try(world, conv) is None
    time.now = 1501.9
    assert _try(world, conv) is None  # the bucket's second token
    refused = _try(world, conv)
    assert refused is not None
    assert refused.details["retryAfterSeconds"] == pytest.approx(0.1)
    time.now = 1502.0
    assert _try(world, conv) is None  # the new bucket, full


@pytest.mark.parametrize(
    ("style", "body", "header"),
    [("exact", 0.25, None), ("whole", 1, None), ("header", None, "1"), ("none", None, None)],
)
def test_schedule_hint_styles(style: str, body: float | None, header: str | None) -> None:
    world, _, conv = _world(LimitSchedule(((0.0, TokenBucket(rate=4, burst=1)),), style))  # type: ignore[arg-type]
    assert _try(world, conv) is None
    refused = _try(world, conv)
    assert refused is not None
    assert refused.status == 429
    assert refused.details.get("retryAfterSeconds") == body
    assert (refused.headers or {}).get("Retry-After") == header


def test_schedule_round_trips_through_json_and_refuses_nonsense() -> None:
    schedule = LimitSchedule(
        ((0.0, FixedWindow(limit=5, window=2.0)), (3.0, SlidingWindow(limit=9, window=1.0))),
        "header",
    )
    assert LimitSchedule.from_dict(schedule.to_dict()) == schedule
    with pytest.raises(ValueError, match="start at 0"):
        LimitSchedule(((1.0, TokenBucket(rate=1)),))
    with pytest.raises(ValueError, match="increasing"):
        LimitSchedule(((0.0, TokenBucket(rate=1)), (0.0, TokenBucket(rate=2))))
    with pytest.raises(ValueError, match="hints"):
        LimitSchedule(((0.0, TokenBucket(rate=1)),), "loud")  # type: ignore[arg-type]


@pytest.mark.parametrize(("style", "expected"), [("header", 1.0), ("none", None)])
async def test_the_client_reads_a_header_only_hint_and_survives_none(
    style: str, expected: float | None
) -> None:
    """Over loopback: a header-only 429 gives the client its hint, a bare one none."""
    time = FakeTime()
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()
        server.set_rate_limit(LimitSchedule(((0.0, TokenBucket(rate=1, burst=1)),), style))  # type: ignore[arg-type]
        async with make_client(server, clock=time.clock, sleep=time.sleep, max_retries=0) as c:
            await c.send_message(conv, "first")
            with pytest.raises(RateLimitError) as info:
                await c.send_message(conv, "second")
    assert info.value.retry_after == expected


def test_strict_ideal_is_the_limiters_earliest_admission() -> None:
    """Bucket: (n - burst) / rate.  Fixed window: (ceil(n / W) - 1) * T, not n / rate
    (issue 19: the old ideal made a 1.27x run look like 1.02x).  A moving limit is
    integrated.  Latency adds one round trip and the client's ceiling n x RTT / in-flight."""
    bucket = LimitSchedule(((0.0, TokenBucket(rate=200, burst=10)),))
    assert strict_ideal(bucket, 1000) == pytest.approx((1000 - 10) / 200)
    window = LimitSchedule(((0.0, FixedWindow(limit=100, window=1.0)),))
    assert strict_ideal(window, 500) == pytest.approx((math.ceil(500 / 100) - 1) * 1.0)
    assert strict_ideal(window, 500) < 500 / 100
    moving = LimitSchedule(
        ((0.0, TokenBucket(rate=100, burst=1)), (1.0, TokenBucket(rate=400, burst=1)))
    )
    # 101 by 1.0 s (the first at 0), then a fresh bucket's token and one per 1/400 s.
    assert strict_ideal(moving, 502) == pytest.approx(1.0 + 400 / 400, abs=0.003)
    assert strict_ideal(bucket, 1000, latency=0.1) == pytest.approx(4.95 + 0.1)
    assert strict_ideal(bucket, 1000, latency=1.0, in_flight=8) == pytest.approx(1000 / 8)
    sliding = LimitSchedule(((0.0, SlidingWindow(limit=10, window=2.0)),))
    assert admission_times(sliding, 21)[-1] == pytest.approx(4.0)


def test_ideal_from_the_benchmarks_server_arguments() -> None:
    assert ideal_from_server_args(("--rate", "500", "--burst", "10"), 1500) == pytest.approx(2.98)
    args = ("--window-limit", "100", "--window", "1", "--latency", "0.04")
    assert ideal_from_server_args(args, 500) == pytest.approx(4.04)
    assert ideal_from_server_args(("--fault", "x"), 10) is None


def test_draws_are_reproducible_and_cover_the_family() -> None:
    """The same seed is the same draw; 300 seeds cover every kind, hint style, a moving
    and a flapping limit, 0-200 ms and 1-16 processes, each lasting at least a window."""
    assert draw(123) == draw(123)
    draws = [draw(seed) for seed in range(300)]
    assert {d.kind for d in draws} == {"bucket", "fixed", "sliding"}
    assert {d.hints for d in draws} == {"exact", "whole", "header", "none"}
    assert any(d.flapping for d in draws)
    assert any(d.changes and not d.flapping for d in draws)
    assert max(d.latency for d in draws) <= 0.2
    assert min(d.latency for d in draws) == 0
    assert {d.processes for d in draws} >= {1, 2, 16}
    for d in draws:
        assert 5 <= d.rate <= 5000 or d.kind != "bucket"
        assert 1 <= d.window <= 60 or d.kind == "bucket"
        assert d.ideal() > 0
