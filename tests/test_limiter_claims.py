"""What a refusal's exact hint claims, bucket against fixed window
(benchmarks/pacing-experiments.md).

A hint claims "nothing passes before now + hint".  The pacer cannot tell a bucket's
exact hint from a window's by what the limiter does around the claims: both refuse
everything before the claimed instant (a bucket's refusals in a volley all point to its
next token, as a window's to its reset), and a bucket's successive claims step by one
slot, ``1 / rate``, never less than any hint it gave (each is at most a slot), as a
window's step by its length, never less than its hints.  Only how many pass per step
differs: one for a bucket, W for a window.  These hold the fake server's limiters to
that, which the record of branch ``kind`` rests on.
"""

from __future__ import annotations

from itertools import pairwise

import pytest

from opentrain_async.testing import FixedWindow, TokenBucket

START = 50.0


def _claims(limiter: object, times: list[float]) -> tuple[list[float], list[float], int]:
    """Ask at each time: the claimed instants (now + hint), the hints, the admitted."""
    claims, hints, admitted = [], [], 0
    for now in times:
        wait = limiter.acquire(now)  # type: ignore[attr-defined]
        if wait is None:
            admitted += 1
        else:
            claims.append(now + wait)
            hints.append(float(wait))
    return claims, hints, admitted


@pytest.mark.parametrize(("rate", "burst"), [(40.0, 4), (7.3, 10), (250.0, 48)])
def test_a_buckets_volley_claims_one_instant(rate: float, burst: int) -> None:
    """Past its burst, every refusal before the next token claims the same instant."""
    limiter = TokenBucket(rate=rate, burst=burst)._limiter(START, START)
    step = 0.1 / rate  # ten asks per slot, all inside the first slot after the burst
    times = [START + i * step / burst for i in range(burst)]
    times += [times[-1] + (i + 1) * step for i in range(8)]
    claims, _, admitted = _claims(limiter, times)
    assert admitted == burst
    assert len(claims) == 8
    assert max(claims) - min(claims) < 1e-9


@pytest.mark.parametrize(("rate", "burst"), [(40.0, 4), (7.3, 10), (250.0, 48)])
def test_a_buckets_claims_step_a_slot_no_less_than_its_hints(rate: float, burst: int) -> None:
    """Asked ten times a slot past its burst, a bucket admits one per slot and its
    distinct claims are one slot apart: never closer than its longest hint."""
    limiter = TokenBucket(rate=rate, burst=burst)._limiter(START, START)
    times = [START] * burst + [START + (i + 1) * 0.1 / rate for i in range(105)]
    claims, hints, admitted = _claims(limiter, times)
    steps = sorted({round(c, 9) for c in claims})
    gaps = [b - a for a, b in pairwise(steps)]
    assert admitted - burst == len(steps) - 1  # one passes per claim step
    assert gaps
    assert min(gaps) == pytest.approx(1 / rate)
    assert min(gaps) >= max(hints) - 1e-9


def test_a_fixed_windows_claims_step_its_length_after_w() -> None:
    """A fixed window's claims step by its length, W passing per step: what alone tells
    it from a bucket (a window of one per slot is a bucket of burst 1)."""
    limit, window = 5, 0.5
    limiter = FixedWindow(limit=limit, window=window)._limiter(START, START)
    times = [START + i * 0.01 for i in range(150)]
    claims, hints, admitted = _claims(limiter, times)
    steps = sorted({round(c, 9) for c in claims})
    gaps = [b - a for a, b in pairwise(steps)]
    assert len(steps) == 3  # three windows asked in
    assert admitted == limit * len(steps)  # W passing per step
    assert gaps == [pytest.approx(window)] * (len(steps) - 1)
    assert min(gaps) >= max(hints) - 1e-9
