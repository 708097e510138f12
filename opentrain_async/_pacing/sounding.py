"""A rounded hint is a threshold test: probes that find a window's reset (one pacer).

A window's 429 with a hint rounded up to whole seconds, ``h``, for a request admitted
at ``s`` and answered at ``r`` says the server's wait at the request's arrival
(somewhere in ``[s, r]``) was in ``(h - 1, h]``: the reset ``R`` is in
``(s + h - 1, r + h]``.  The wall's 429s intersect to ``[low, high]``, and the pause
ends at ``high`` (``allowance.tighten``), up to a second after ``R``.  A probe that
arrives at ``a`` before ``R`` is refused with ``ceil(R - a)``: timed to arrive at
``x - j`` (``j`` a whole number of seconds, ``x`` inside the interval), its hint is
``j + 1`` if ``R > x`` and ``j`` if ``R <= x``: one 429 answers "is the reset past
``x``?" while the wall is still shut (its own bound, ``(s + h - 1, r + h]`` again, is
what is intersected: the arrival is only known within the probe's round trip).  A
point is testable only a second or more ahead (``j >= 1``), so the points go up the
interval, evenly (``PROBES`` of them), and the first "no" ends it.  A probe's 429 is
reported ``sounding`` (``PacingFeedback``): it neither pauses, cuts, nor leaves the
window's mode, and its bound ends the pause sooner (``allowance.tighten``).  Where a
wall is sounded, the wall's own refused requests wait for the pacer's pause, not each
its own 2 s (``ResetSounder.paces``, ``Pacer.paces_reset``): else a pause ended at the
reset found sends only what was not refused.

Seed 7194 of ``family_sim --max-window 2`` (a sliding window of 90 per 1.23 s, header
hints, no latency): every window opened at 0, 2 and 4 s, each wall's hint 2 waited in
full (1.64x); sounded, at 0, 1.34 and 2.68 s (1.10x).  Only walls of short windows
(hints of at most ``WINDOW_HINT``, where a second is half a window or more) that admit
``FEW`` or more, and only for a pacer on the in-process backend (one process on its
state): processes sharing a state would each sound the same wall, and the Redis
scripts do not read the flag (branch ``flip``, benchmarks/pacing-experiments.md).
"""

from __future__ import annotations

import math

from .allowance import in_window_mode
from .pause import WINDOW_HINT, is_exact
from .state import PacingState

__all__ = ["FEW", "LATE", "PROBES", "ResetSounder", "bounds_the_pause"]

PROBES = 2
"""Probes per wall, each one 429: two put a second's interval into thirds (a reset
found about 0.17 s late on average, not 0.5 s).  Three or four found it no sooner in
the 2 s family's tuning draws, for more 429s."""


LATE = 0.05
"""Seconds a probe may go past its time and still count as on time (a timer's lateness,
a loaded loop): it then tests a point as much later."""


FEW = 20
"""A window that admits fewer than this is not sounded: each probe is one 429 more per
window, a share of its sends too large (seed 3265, 6 per 1.41 s: 83% -> 96% 429s).
20: at most a tenth more; 30 read the same in the tuning draws."""


class ResetSounder:
    """The interval a window's reset lies in, from rounded 429s, and its probes (backend
    clock throughout)."""

    __slots__ = ("enabled", "high", "left", "low", "out_at", "probed")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        """False: never probes (a pacer whose state other processes share)."""
        self.low = -math.inf
        self.high = -math.inf
        """The reset is in (``low``, ``high``]; ``high`` in the past: no wall known."""
        self.left = 0
        """Probes this wall may still send."""
        self.probed = False
        """This wall is sounded (it was given probes)."""
        self.out_at: float | None = None
        """The admission of the probe in flight (None: none)."""

    def note(self, sent_at: float, now: float, hint: float, probes: int = PROBES) -> None:
        """A rounded 429 (``hint`` whole seconds) of the wall whose pause ends at a reset,
        for a request admitted at ``sent_at`` and answered at ``now``: the reset is in
        ``(sent_at + hint - 1, now + hint]``.  An interval that does not meet the one
        known (a wall passed, or another reset) starts a new wall."""
        low, high = sent_at + hint - 1, now + hint
        if self.high <= now or low >= self.high or high <= self.low:
            self.low, self.high, self.left, self.probed = low, high, probes, probes > 0
            return
        self.low, self.high = max(self.low, low), min(self.high, high)

    def due(self, now: float) -> float | None:
        """When the next probe goes, or None: none left, one out, the wall passed, or its
        point less than a second ahead.  The point is the first of ``left`` even steps
        up the interval, and the probe goes a whole number of seconds (at least one)
        before it, less than a second from ``now``, so it arrives before the reset."""
        if not self.enabled or self.left <= 0 or self.out_at is not None or self.high <= now:
            return None
        point = self.low + (self.high - self.low) / (self.left + 1)
        ahead = math.floor(point - now + LATE)
        if ahead < 1:
            return None
        return point - ahead

    def reported(
        self,
        state: PacingState,
        cap: float | None,
        sent_at: float,
        now: float,
        hint: float | None,
    ) -> None:
        """A 429 with ``hint`` for a request admitted at ``sent_at``, answered at ``now``
        and reported (``state`` after it): noted if it bounds a window's reset."""
        if not self.enabled or hint is None or not bounds_the_pause(state, cap, now, hint):
            return
        if hint > WINDOW_HINT:  # a long window's wall: not sounded
            self.left, self.probed = 0, False
            return
        window = state.win_size or state.successes  # W, or what the first window took
        self.note(sent_at, now, hint, PROBES if window >= FEW else 0)

    def paces(self, state: PacingState, cap: float | None, retry_after: float) -> bool:
        """A bulk send's 429 with a window's whole hint is the pacer's to wait (asked
        after its report): this pacer sounds the wall, so its pause ends near the reset."""
        sounded = self.probed and retry_after <= WINDOW_HINT
        return self.enabled and sounded and in_window_mode(state, cap)

    def sent(self, at: float) -> None:
        """The probe was admitted at ``at``."""
        self.out_at = at
        self.left -= 1

    def answered(self, sent_at: float) -> bool:
        """An answer for a request admitted at ``sent_at``: True if it is the probe's."""
        if self.out_at is None or sent_at != self.out_at:
            return False
        self.out_at = None
        return True


def bounds_the_pause(state: PacingState, cap: float | None, now: float, hint: float | None) -> bool:
    """A 429 with ``hint``, answered at ``now`` and reported (``state`` after it), is a
    rounded one of a window whose pause ends at its reset: one ``ResetSounder.note`` takes."""
    if hint is None or hint < 1 or is_exact(hint) or not in_window_mode(state, cap):
        return False
    return state.win_reset == state.pause_until > now
