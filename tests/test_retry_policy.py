"""The retry policy's decisions and waits, with injected randomness: no network, no waiting."""

from __future__ import annotations

import pytest

from opentrain_async import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
)


def rate_limited(hint: float | None) -> RateLimitError:
    return RateLimitError("slow down", status=429, retry_after=hint)


@pytest.mark.parametrize("idempotent", [True, False])
def test_terminal_statuses_are_never_retried(idempotent: bool) -> None:
    """400/403/409 are policy or input errors: retrying cannot change them."""
    policy = RetryPolicy()
    for error in (
        BadRequestError("x", status=400),
        PermissionDeniedError("x", status=403),
        ConflictError("x", status=409),
    ):
        assert policy.retry_reason(error, idempotent=idempotent) is None


def test_rate_limit_is_retried_up_to_the_cap() -> None:
    """A 429 is retried unless its hint exceeds max_retry_after."""
    policy = RetryPolicy(max_retry_after=120)
    assert policy.retry_reason(rate_limited(120), idempotent=False) == "rate_limited"
    assert policy.retry_reason(rate_limited(None), idempotent=False) == "rate_limited"
    assert policy.retry_reason(rate_limited(121), idempotent=False) is None


def test_wait_is_never_shorter_than_the_hint() -> None:
    """The jitter on a 429 only ever adds to the server's hint."""
    for r in (0.0, 0.5, 0.999):
        policy = RetryPolicy(random=lambda r=r: r, jitter=0.1)
        wait = policy.compute_wait(rate_limited(2.0), 1)
        assert 2.0 <= wait <= 2.2


def test_missing_hint_falls_back_to_exponential_backoff() -> None:
    """Without a hint the wait doubles per attempt, within full-jitter bounds."""
    policy = RetryPolicy(random=lambda: 1.0, backoff_initial=0.5, backoff_max=3.0)
    assert [policy.compute_wait(rate_limited(None), n) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    low = RetryPolicy(random=lambda: 0.0, backoff_initial=0.5)
    assert low.compute_wait(rate_limited(None), 1) == 0.25


def test_never_reached_is_retried_for_writes_unknown_is_not() -> None:
    """A refused connection is safe to retry; an unknown-outcome write is not."""
    policy = RetryPolicy()
    refused = APIConnectionError("refused", reached_server=False)
    reset = APIConnectionError("reset", reached_server=None)
    timeout = APITimeoutError("timeout")
    assert policy.retry_reason(refused, idempotent=False) == "connection_failed"
    assert policy.retry_reason(reset, idempotent=False) is None
    assert policy.retry_reason(timeout, idempotent=False) is None
    assert policy.retry_reason(reset, idempotent=True) == "connection_failed"
    assert policy.retry_reason(timeout, idempotent=True) == "timeout"


@pytest.mark.parametrize(
    ("status", "retried"), [(500, False), (502, True), (503, True), (504, True)]
)
def test_gets_retry_gateway_errors(status: int, retried: bool) -> None:
    """GETs retry 502/503/504; writes never retry a 5xx (it may have committed)."""
    policy = RetryPolicy()
    error = InternalServerError("x", status=status)
    assert (policy.retry_reason(error, idempotent=True) is not None) is retried
    assert policy.retry_reason(error, idempotent=False) is None


def test_invalid_policy_values_are_refused() -> None:
    """Negative retry counts or caps are configuration errors."""
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=-1)


def test_paced_retry_leaves_only_a_rounded_one_second_hint_to_the_pacer() -> None:
    """A bulk send's retries (paced) skip their own wait for a whole hint of 1 s, the
    one the pacer's short pause stands for, however many 429s in a row; exact hints and
    window hints (2 s or more) are still waited in full; no hint at all is always the
    pacer's; nothing changes outside bulk."""
    policy = RetryPolicy(random=lambda: 0.0)
    assert policy.compute_wait(rate_limited(1), 1, paced=True) == 0.0
    assert policy.compute_wait(rate_limited(1), 2, paced=True) == 0.0  # 429 twice in a row
    assert policy.compute_wait(rate_limited(1), 7, paced=True) == 0.0
    assert policy.compute_wait(rate_limited(1), 1) == 1.0
    assert policy.compute_wait(rate_limited(0.3), 1, paced=True) == 0.3
    assert policy.compute_wait(rate_limited(2), 1, paced=True) == 2.0
    # No hint (or 0): the pacer's short pause, one probe at a time while the limiter
    # stays shut, stands for every wait of a bulk send (``_pacing/probe.py``).
    assert policy.compute_wait(rate_limited(None), 1, paced=True) == 0.0
    assert policy.compute_wait(rate_limited(None), 5, paced=True) == 0.0
    assert policy.compute_wait(rate_limited(0), 3, paced=True) == 0.0
    assert policy.compute_wait(rate_limited(None), 1) == 0.25  # backoff outside bulk
