"""Several processes sharing a one-token bucket: the refused share is every process's.

The evidence of one token (``ArrivalSpread.one_token``) asks that under ``RUN_SHARE`` of
recent answers were refused, an EWMA that starts at 1.  Each process used to read it over
its own answers only: with N processes a tenth of the answers each, it stayed high for
long after the shared curve's 429s had become rare (family_sim seed 1810, 10 processes:
0.59-0.75 in every process at 1-3 s), so no process read one token, and each lone 429
cut the shared curve.  A report now returns the shared totals (``PacingState.successes``,
``throttles``), and a pacer on a shared backend moves its share by every process's
answers since its last report (``ArrivalSpread.shared_answers``).  Virtual time.
"""

from __future__ import annotations

from opentrain_async import Pacer, PacingState, PacingTuning
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.spread import RUN_SHARE, ArrivalSpread
from opentrain_async.testing import FakeTime

from .pacing_kit import Shared
from .test_pacing_one_token_shared import TRIPS

LEARNED = PacingState(limit=100.0, searching=False, cuts=3, origin=0.0, successes=50)


def _pacer(time: FakeTime, shared: bool) -> tuple[Pacer, InMemoryPacingBackend]:
    inner = InMemoryPacingBackend(PacingTuning(), clock=time.clock, state=LEARNED)
    backend = Shared(inner) if shared else inner
    return Pacer(backend=backend, clock=time.clock, sleep=time.sleep), inner


async def _told_then_others_answer(time: FakeTime, shared: bool) -> Pacer:
    """A process that saw ten answers of its own, then a lone 429 under the limit (one
    piece of evidence), reported; meanwhile the other processes' 300 sends were
    accepted; then its next 429 is reported."""
    pacer, inner = _pacer(time, shared)
    for trip in TRIPS * 5:
        pacer.spread.answered(trip, accepted=True)
    pacer.spread.below(90.0, 100.0)
    await pacer.on_throttle(time.clock() - 0.01, None)
    await inner.reserve(0, successes=300)  # the other processes' successes
    time.advance(0.5)
    await pacer.on_throttle(time.clock() - 0.01, None)
    return pacer


async def test_a_process_reads_the_refused_share_of_all_processes() -> None:
    """Its own answers say 70%+ refused (an EWMA from 1 over a dozen answers); all
    processes' say two 429s in 312: one token, where alone it would not be."""
    time = FakeTime(start=100.0)
    pacer = await _told_then_others_answer(time, shared=True)
    assert pacer.spread.refused < RUN_SHARE
    assert pacer.spread.one_token()
    alone, _ = _pacer(FakeTime(start=100.0), shared=False)
    for trip in TRIPS * 5:
        alone.spread.answered(trip, accepted=True)
    alone.spread.answered(0.01, accepted=False)
    assert alone.spread.refused > 0.6  # its own answers only


async def test_a_pacer_alone_keeps_its_own_share() -> None:
    """On its own in-memory backend the totals are its own answers: nothing is read
    from them (counted twice, they would halve its memory)."""
    time = FakeTime(start=100.0)
    pacer = await _told_then_others_answer(time, shared=False)
    assert pacer.spread.refused > 0.6


def test_totals_gone_back_start_over() -> None:
    """Totals lower than the last read (another backend, the state expired) are a new
    start: the share is left as it is, and the next answers move it from there."""
    spread = ArrivalSpread(shared=True)
    spread.shared_answers(1000, 10)
    spread.shared_answers(1300, 10)
    low = spread.refused
    assert low < 0.01
    spread.answered(0.01, accepted=False)
    spread.shared_answers(5, 1)  # gone back
    assert spread.refused > low
    spread.shared_answers(105, 1)
    assert spread.refused < 0.01
