"""Several processes sharing a one-token bucket (``SHARED_EVIDENCE``): a process's first
lone 429 under the shared limit is taken for the bucket's, not the limit's.

The curve is shared, the evidence of one token (``ArrivalSpread.below``) is each
process's own: with N processes each lone 429 under the limit reaches one of them, and
each needed two of its own, its lone 429s cutting the curve the others had learned to
leave alone until then.  family_sim seed 1810 (2 s family, a 650/s bucket of burst 1,
10 processes): from 9 s on three processes with one piece of evidence each cut it,
72 -> 35/s; 11.92x its ideal.  Virtual time throughout.
"""

from __future__ import annotations

from opentrain_async import Pacer, PacingTuning
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.spread import ONE_TOKEN_OVERLAP, OVERLAP, SHARED_EVIDENCE
from opentrain_async.testing import FakeTime

from .pacing_kit import Shared

TRIPS = (0.0100, 0.0105)  # round trips: arrivals spread over about 0.5 ms


def _spread_told_once(pacer: Pacer) -> None:
    """One lone 429 under the learned limit among round trips that spread arrivals over
    0.5 ms, sends 4 ms apart (spread x rate 0.125: no overlap)."""
    for trip in TRIPS * 100:
        pacer.spread.answered(trip, accepted=True)
    pacer.spread.below(90.0, 100.0)
    pacer.spread.answered(0.01, accepted=False)
    for trip in TRIPS * 20:
        pacer.spread.answered(trip, accepted=True)


async def test_a_process_on_a_shared_curve_needs_one_lone_429_under_the_limit() -> None:
    """On a shared backend the first lone 429 under the limit already tells one token:
    the next lone 429, with sends further apart than arrivals spread, is the bucket's,
    not the limit's (before, each process needed two of its own, ``EVIDENCE``)."""
    assert SHARED_EVIDENCE == 1
    time = FakeTime(start=100.0)
    tuning = PacingTuning()
    shared = Shared(InMemoryPacingBackend(tuning, clock=time.clock))
    pacer = Pacer(backend=shared, clock=time.clock, sleep=time.sleep)
    _spread_told_once(pacer)
    assert pacer.spread.one_token()
    assert ONE_TOKEN_OVERLAP <= pacer.spread.seconds * 500.0 < OVERLAP
    assert pacer.spread.explains(500.0)
    alone = Pacer(tuning=tuning, clock=time.clock, sleep=time.sleep)
    _spread_told_once(alone)
    assert not alone.spread.one_token()  # a bucket with a burst may have refused it
    assert not alone.spread.explains(500.0)
