"""Rate control shared by every request of one client: the pacer, in parts.

* ``state``: ``PacingState``, everything learned (one immutable value), and the tuning.
* ``curve``: the rate as a pure function of (state, now): search, cut, CUBIC, freeze.
* ``samples``: accepted and offered rate per 0.1 s, for the cut.
* ``pause``: how long a 429's hint holds every request back.
* ``schedule``: GCRA slots, released together when due.
* ``window``: the slow-start window before the first 429 (local to a process).
* ``episode``: a 429's cut: whether it opens an episode, and how far it cuts.
* ``backend``: the async, atomic ``PacingBackend`` protocol (reserve slots, report what
  happened) and ``InMemoryPacingBackend``; a shared backend mirrors its pure functions.
* ``pacer``: ``Pacer``, the client's side: queue, leader, fast path.

With a stated limit (``rate_limit=``) requests are spaced evenly at that rate.  Without
one, nothing is paced until the first 429 (slow start only); the first 429 starts a
search from what got through so far; each later episode cuts once and restarts a CUBIC
curve that climbs back and probes above the limit.
"""

from .backend import (
    InMemoryPacingBackend,
    PacingBackend,
    Reservation,
    apply_report,
    apply_reserve,
    current_rate,
)
from .pacer import Pacer
from .state import PacingFeedback, PacingState, PacingTuning

__all__ = [
    "InMemoryPacingBackend",
    "Pacer",
    "PacingBackend",
    "PacingFeedback",
    "PacingState",
    "PacingTuning",
    "Reservation",
    "apply_report",
    "apply_reserve",
    "current_rate",
]
