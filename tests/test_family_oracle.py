"""The family's floor (``benchmarks.family_oracle``): a client told the limit meets the
strict ideal when nothing about the network is unknown, and loses to the jitter alone
when it is.  All in virtual time: the ratios are of simulated seconds."""

from __future__ import annotations

import attrs

from benchmarks.family import Draw
from benchmarks.family_sim import run_draw


def bucket(jitter: float, *, burst: int = 10) -> Draw:
    """A bucket of 500/s, 100 ms away, 1,000 messages from one process."""
    return Draw(1, "bucket", 500.0, burst, 0.0, (), "exact", 0.1, jitter, 1, 1000)


def window(jitter: float) -> Draw:
    """A fixed window of 100 per second, 100 ms away, 350 messages (four windows)."""
    return Draw(2, "fixed", 100.0, 100, 1.0, (), "exact", 0.1, jitter, 1, 350)


def test_the_oracle_meets_the_strict_ideal_on_a_bucket_without_jitter() -> None:
    result = run_draw(bucket(0.0), "oracle")
    assert result.delivered == 1000
    assert result.throttled == 0
    assert 1.0 <= result.ratio < 1.02  # timers fire late: a few tenths of a ms a token


def test_the_oracle_meets_the_strict_ideal_on_a_fixed_window_without_jitter() -> None:
    result = run_draw(window(0.0), "oracle")
    assert result.delivered == 350
    assert result.throttled == 0
    assert 1.0 <= result.ratio < 1.01  # 3.1 s: three resets, one round trip, the CPU


def test_the_oracle_meets_the_ideal_with_the_limit_moving_and_many_processes() -> None:
    """(At 50 ms: 64 in flight carry 1,280/s, above the 1,000/s the limit rises to.  The
    strict ideal counts the limit and the in-flight ceiling apart, not together.)"""
    moving = attrs.evolve(bucket(0.0), changes=((0.5, 0.25), (1.5, 2.0)), processes=4, latency=0.05)
    result = run_draw(moving, "oracle")
    assert result.throttled == 0
    assert 1.0 <= result.ratio < 1.02


def test_jitter_alone_costs_a_burst_1_bucket_429s_the_oracle_cannot_avoid() -> None:
    """The same draw with +-50% latency jitter: arrivals bunch, and a bucket that holds
    one token refuses the early ones however well the sends were timed."""
    steady = run_draw(bucket(0.0, burst=1), "oracle")
    jittered = run_draw(bucket(0.5, burst=1), "oracle")
    assert steady.throttled == 0
    assert jittered.throttled > 0.2 * jittered.draw.n
    assert jittered.delivered == jittered.draw.n
    assert jittered.seconds > steady.seconds


def test_aiming_the_jitter_late_trades_time_for_429s_on_a_window() -> None:
    """``oracle-late`` aims every arrival the jitter's spread after the reset: none is
    refused where ``oracle``, aiming at the reset, has some of each window's arrive
    before it; it pays that spread once per reset."""
    exact = run_draw(window(0.5), "oracle")
    late = run_draw(window(0.5), "oracle-late")
    assert exact.throttled > 0
    assert late.throttled == 0
    assert late.delivered == exact.delivered == 350
