"""A one-token bucket told from a bucket with a burst, and its runs of 429s not cut.

With latency jitter a token bucket of one refuses bunched arrivals at any rate (the
share ``rate / (rate + limit)``), so 429s come two in a row now and then far below its
limit; each pair used to cut, and the rate ratcheted down to 5-10% of the limit
(family_sim seed 3623: a 3,235/s bucket held at 200-300/s).  A bucket with a burst
refuses nothing below its rate, so lone 429s for requests sent under the learned limit
are the evidence; without it a pair still cuts (a bucket with a burst at its limit
refuses a few percent too, in runs).  Virtual time throughout.
"""

from __future__ import annotations

from opentrain_async import Pacer, PacingTuning
from opentrain_async._pacing.spread import EVIDENCE, RUN_SHARE, UNDER, ArrivalSpread
from opentrain_async.testing import FakeTime


def _jittered(spread: ArrivalSpread, answers: int) -> None:
    for trip in (0.01, 0.05) * (answers // 2):
        spread.answered(trip, accepted=True)


def test_lone_429s_under_the_limit_make_a_run_the_spreads() -> None:
    """A second 429 in a row is a limit's until lone 429s came under the learned
    limit; then it is the spread's while under ``RUN_SHARE`` of answers were refused,
    and a run of three drops the evidence."""
    spread = ArrivalSpread()
    _jittered(spread, 200)
    spread.answered(0.03, accepted=False)
    assert not spread.explains(200.0)  # no evidence: a bucket with a burst, at its limit
    for _ in range(EVIDENCE):
        _jittered(spread, 20)
        spread.below(UNDER * 100.0 * 0.99, 100.0)
        spread.answered(0.03, accepted=False)
    assert spread.under == EVIDENCE
    assert spread.explains(200.0)  # the second in a row, at a low refused share
    assert not spread.explains(1.0)  # (sends that do not overlap: a limit's, as before)
    spread.answered(0.03, accepted=False)
    assert spread.under == EVIDENCE
    spread.answered(0.03, accepted=False)
    assert spread.under == 0  # three in a row are a limit's: the evidence is dropped
    assert not spread.explains(200.0)
    assert spread.refused < RUN_SHARE


def test_429s_at_the_limit_or_in_a_row_are_no_evidence() -> None:
    """A bucket with a burst refuses at its rate, and in runs: neither says one token."""
    spread = ArrivalSpread()
    _jittered(spread, 100)
    spread.below(UNDER * 100.0, 100.0)  # at the limit's edge
    spread.answered(0.03, accepted=False)
    spread.below(50.0, 100.0)  # far under it, but right after a 429
    assert spread.under == 0


async def _a_pair(pacer: Pacer, time: FakeTime) -> None:
    for _ in range(2):
        sent = await pacer.acquire()
        time.now += 0.05
        await pacer.on_throttle(sent, None)


async def _answers(pacer: Pacer, time: FakeTime, count: int) -> None:
    for trip in [0.01, 0.09] * (count // 2):
        sent = await pacer.acquire()
        time.now += trip
        pacer.on_success(sent)


async def test_pairs_of_429s_below_a_one_token_limit_do_not_ratchet_it() -> None:
    """Past its search and one cut by a pair, lone 429s just after the cut (on the curve
    at 0.9 of the limit, which a bucket with a burst would not refuse) are evidence of
    one token: the pairs after them, at a low refused share, neither cut nor pause.
    Before, each pair cut the limit."""
    time = FakeTime(start=100.0)
    pacer = Pacer(tuning=PacingTuning(doubling=0.01), clock=time.clock, sleep=time.sleep)
    await _answers(pacer, time, 20)
    await pacer.on_throttle(await pacer.acquire(), 0.001)  # the search
    time.now += 0.15
    await _answers(pacer, time, 20)
    await pacer.on_throttle(await pacer.acquire(), 0.001)  # its end
    time.now += 0.01
    await _answers(pacer, time, 200)
    await _a_pair(pacer, time)  # no evidence yet: a pair cuts
    assert pacer.state.cuts == 3
    time.now = max(time.now, pacer.state.origin)
    for _ in range(EVIDENCE):
        await _answers(pacer, time, 6)
        await pacer.on_throttle(await pacer.acquire(), None)  # lone, under the limit
    assert pacer.spread.under == EVIDENCE
    cuts, limit = pacer.state.cuts, pacer.state.limit
    for _ in range(10):
        await _answers(pacer, time, 14)
        await _a_pair(pacer, time)
        assert pacer.pause_remaining() <= 0
    assert (pacer.state.cuts, pacer.state.limit) == (cuts, limit)


async def test_a_pair_at_the_limit_of_a_bucket_with_a_burst_still_cuts() -> None:
    """The same pacer with no 429 under the limit after the cut (a bucket with a burst
    refuses only above its rate): a pair at a low refused share cuts, as before."""
    time = FakeTime(start=100.0)
    pacer = Pacer(tuning=PacingTuning(doubling=0.01), clock=time.clock, sleep=time.sleep)
    await _answers(pacer, time, 20)
    await pacer.on_throttle(await pacer.acquire(), 0.001)
    time.now += 0.15
    await _answers(pacer, time, 20)
    await pacer.on_throttle(await pacer.acquire(), 0.001)
    time.now += 0.01
    await _answers(pacer, time, 200)
    await _a_pair(pacer, time)
    cuts = pacer.state.cuts
    await _answers(pacer, time, 400)  # past the recovery, at the limit
    await _a_pair(pacer, time)
    assert pacer.spread.under == 0
    assert pacer.state.cuts == cuts + 1
