"""A rounded hint is a threshold test: probes that find a window's reset (pure functions
on the state, so every pacer sharing it sounds a wall once for all).

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
its own 2 s (``paces``, ``Pacer.paces_reset``): else a pause ended at the reset found
sends only what was not refused.

The interval (``snd_low``, ``snd_high``), the probes left and the one out live in the
``PacingState`` (branch ``flipshared``): every pacer's rounded 429 narrows the one
interval (``note_wall``, in ``apply_report``), and a reservation made in the wall's
pause when a probe is due is granted it (``grant_probe``, in ``apply_reserve``: one
reservation, so one pacer of all sharing the state; the others are told when to ask
again, ``next_probe``).  Sound with 16 processes: the grant is one atomic step (a Lua
script on Redis), so a wall draws ``PROBES`` probes, not one per process; a probe whose
pacer died or lost its answer holds its turn ``ANSWER_WAIT`` (its lease) and then goes
again from another (``snd_left`` falls only at a probe's answer).

Seed 7194 of ``family_sim --max-window 2`` (a sliding window of 90 per 1.23 s, header
hints, no latency): every window opened at 0, 2 and 4 s, each wall's hint 2 waited in
full (1.64x); sounded, at 0, 1.34 and 2.68 s (1.10x).  Only walls of short windows
(hints of at most ``WINDOW_HINT``, where a second is half a window or more) that admit
``FEW`` or more (branches ``flip`` and ``flipshared``, benchmarks/pacing-experiments.md).
"""

from __future__ import annotations

import math

from .allowance import ANSWER_WAIT, in_window_mode
from .pause import WINDOW_HINT, is_exact
from .state import PacingState, evolve

__all__ = [
    "FEW",
    "LATE",
    "PROBES",
    "ProbeOut",
    "bounds_the_pause",
    "grant_probe",
    "next_probe",
    "note_wall",
    "paces",
    "probe_answered",
    "probe_due",
]

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


class ProbeOut:
    """A pacer's probe that the state granted it (``grant_probe``), until its answer:
    its 429 is reported ``sounding``."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None
        """Its admission (backend clock); None: none out."""

    def granted(self, probe: bool, admission: float) -> None:
        """A reservation taken in: a ``probe`` (``Reservation.is_probe``) goes at ``admission``."""
        if probe:
            self.at = admission

    def answered(self, sent_at: float) -> bool:
        """An answer for a send admitted at ``sent_at``: True if it is the probe's.  To a
        millisecond: the clocks' offset, read again by a reservation since, may move the
        admission by microseconds, and nothing else is admitted in the wall's pause."""
        if self.at is None or abs(sent_at - self.at) > 1e-3:
            return False
        self.at = None
        return True


def note_wall(
    state: PacingState, cap: float | None, sent_at: float | None, now: float, hint: float | None
) -> PacingState:
    """A 429 with ``hint`` for a request admitted at ``sent_at``, answered by ``now`` and
    reported (``state`` after it), any pacer's: if it is a rounded one of the wall whose
    pause ends at a window's reset (``bounds_the_pause``), the reset is in
    ``(sent_at + hint - 1, now + hint]``, intersected with what the wall's 429s said.
    An interval that does not meet the one known (a wall passed, or another reset)
    starts a new wall, given ``PROBES`` if its window admits ``FEW`` or more; one given
    none is given them at a later 429 of the wall once the successes reported reach
    ``FEW`` (other processes' answers come in after the first 429: branch ``round3``).
    A long window's wall (a hint past ``WINDOW_HINT``) is not sounded."""
    if sent_at is None or hint is None or not bounds_the_pause(state, cap, now, hint):
        return state
    if hint > WINDOW_HINT:
        return evolve(state, snd_left=0, snd_probes=0)
    low, high = sent_at + hint - 1, now + hint
    if state.snd_high <= now or low >= state.snd_high or high <= state.snd_low:
        window = state.win_size or state.successes  # W, or what the first window took
        probes = PROBES if window >= FEW else 0
        return evolve(
            state, snd_low=low, snd_high=high, snd_left=probes, snd_probes=probes, snd_out=-math.inf
        )
    narrowed = evolve(state, snd_low=max(state.snd_low, low), snd_high=min(state.snd_high, high))
    if state.snd_probes == 0 and (state.win_size or state.successes) >= FEW:
        # A wall judged too small at its first 429 is judged again at each later one:
        # with processes sharing the state, the first 429 is often reported before
        # most of the window's successes are (seed 7091, 50 per 1.04 s, 9 processes:
        # 6 of 50 counted at the first, so the wall waited its whole 2 s, 1.62x).
        return evolve(narrowed, snd_left=PROBES, snd_probes=PROBES)
    return narrowed


def probe_answered(state: PacingState, sent_at: float | None) -> PacingState:
    """A probe's 429 (``sounding``), for a send admitted at ``sent_at``: one probe fewer,
    and the next may go (unless it is an earlier probe's, answered after its lease)."""
    out = state.snd_out
    if sent_at is not None and abs(sent_at - out) < 1e-6:
        out = -math.inf
    return evolve(state, snd_left=max(state.snd_left - 1, 0), snd_out=out)


def probe_due(state: PacingState, now: float) -> float | None:
    """When the next probe goes, or None: none left, one out (granted less than
    ``ANSWER_WAIT`` ago), the wall passed, or its point less than a second ahead.  The
    point is the first of ``snd_left`` even steps up the interval, and the probe goes a
    whole number of seconds (at least one) before it, less than a second from ``now``,
    so it arrives before the reset."""
    if state.snd_left <= 0 or state.snd_high <= now or now - state.snd_out < ANSWER_WAIT:
        return None
    low, high = state.snd_low, state.snd_high
    point = low + (high - low) / (state.snd_left + 1)
    ahead = math.floor(point - now + LATE)
    if ahead < 1:
        return None
    return point - ahead


def next_probe(state: PacingState, now: float) -> float:
    """When a pacer waiting out a sounded wall's pause asks again (inf: no need): the
    next probe's time, or, a probe out, its lease's end (its answer has come by then,
    the interval it left tightened: a "no" ended the pause at its point, a second or
    more after it went)."""
    due = probe_due(state, now)
    if due is not None:
        return due
    live = state.snd_left > 0 and state.snd_high > now
    if live and now - state.snd_out < ANSWER_WAIT:
        return state.snd_out + ANSWER_WAIT
    return math.inf


def grant_probe(state: PacingState, now: float) -> PacingState | None:
    """The probe, granted to the reservation asking at ``now`` if one is due (the state
    with it out), else None: one pacer of all sharing the state sends it."""
    due = probe_due(state, now)
    if due is None or due > now:
        return None
    return evolve(state, snd_out=now)


def paces(state: PacingState, cap: float | None, retry_after: float) -> bool:
    """A bulk send's 429 with a window's whole hint is the pacer's to wait (asked after
    its report): the wall is sounded, so its pause ends near the reset."""
    sounded = state.snd_probes > 0 and retry_after <= WINDOW_HINT
    return sounded and in_window_mode(state, cap)


def bounds_the_pause(state: PacingState, cap: float | None, now: float, hint: float | None) -> bool:
    """A 429 with ``hint``, answered at ``now`` and reported (``state`` after it), is a
    rounded one of a window whose pause ends at its reset: ``note_wall`` takes."""
    if hint is None or hint < 1 or is_exact(hint) or not in_window_mode(state, cap):
        return False
    return state.win_reset == state.pause_until > now
