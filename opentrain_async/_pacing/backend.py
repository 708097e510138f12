"""Where the learned state lives: the async, atomic backend protocol and its in-memory form.

Design
------
A pacer (one per client, so one per process) asks its backend two things, each one
atomic read-modify-write of the whole ``PacingState`` on the backend's own clock:

* ``reserve(count, successes=, cap=)``: "reserve my start times".  Counts the
  ``successes`` the pacer saw since its last call, then reserves up to ``count``
  consecutive slots at the current rate (GCRA, honouring ``pause_until``; at most the
  slots due within ``tuning.horizon``, none if the next is further away) and returns
  a ``Reservation``:
  slot ``i`` starts at ``first + i * interval`` on the backend's clock, ``now`` being
  that clock at the reservation (the pacer converts to its own clock by the difference).
* ``report(feedback)``: "report what happened".  Counts successes and, for a 429,
  applies the hint pause (``pause.on_hint``) and at most one cut per episode
  (``curve.first_cut`` / ``curve.cut``), so with many processes each episode still cuts
  once; returns the new state.

Both are compositions of the pure parts, ``apply_reserve`` and ``apply_report`` below,
which a shared backend mirrors (in Redis: one Lua script each, state in one hash, time
from ``TIME``, tuning constants as arguments; ``accepted``/``offered`` as two lists of
``SAMPLE_BUCKETS`` counts).  Each call is one round trip; successes ride along with the
next call rather than costing one each.  What stays in the process: the slow-start
window (requests in flight before the first 429) and the queue of waiting requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

import attrs

from .allowance import (
    bounds_reset,
    earlier_windows,
    in_window_mode,
    not_the_probes,
    probe_bounds_reset,
    reserve_window,
    reset_by,
    slot_wait,
    slot_waited,
    stale_answers,
    stretch_answers,
    tighten,
    window_end,
    window_reset,
)
from .curve import (
    bounded,
    climb,
    first_cut,
    freeze,
    search_again,
)
from .episode import (
    SEARCH_CUTS,
    current_rate,
    cut_episode,
    hint_bound,
    new_episode,
    search_admits,
)
from .pause import is_exact, learn_window, on_hint, says_reset
from .samples import first_estimate, record
from .schedule import restart_if_idle, slots
from .sounding import grant_probe, next_probe, note_wall, probe_answered
from .state import PacingFeedback, PacingState, PacingTuning

__all__ = [
    "InMemoryPacingBackend",
    "PacingBackend",
    "Reservation",
    "apply_report",
    "apply_reserve",
    "current_rate",
]


@attrs.frozen
class Reservation:
    """Start slots a backend reserved for one pacer (times on the backend's clock)."""

    now: float
    """The backend's clock when the slots were reserved."""
    first: float
    """Start time of the first slot (may be up to ``tolerance`` before ``now``: due)."""
    interval: float
    """Seconds between slots; 0 when unpaced (all ``count`` may start at ``first``)."""
    count: int
    """Slots reserved: 0 when the first is more than ``tuning.horizon`` away (it is
    not held: ask again by ``first - horizon``); at least one when unpaced."""
    rate: float | None
    """The rate they were reserved at; None when unpaced (no 429 yet, no stated limit)."""
    cuts: int
    """The state's cut count: slots from an earlier episode are stale."""
    pause_until: float
    """No request starts before this time."""
    until: float = math.inf
    """No slot starts after this time: in a window's mode the window's end (it opened at
    a reset and lasts its hint: ``allowance.window_end``), a slot held past it would go
    into the next window; inf otherwise (a pacer's own deadline, ``Pacer.expired``, still
    holds each slot)."""
    probe_at: float = math.inf
    """A window's wall being sounded (``sounding``): with ``count`` 0, when to ask again
    (its next probe's time, or the lease's end of the probe out; inf: nothing to ask);
    equal to ``first`` with ``count`` 1, the slot is the probe (its 429 is reported
    ``sounding``), granted to this reservation alone of all sharing the state."""

    @property
    def is_probe(self) -> bool:
        """The one slot is a window's probe (``probe_at``)."""
        return self.count == 1 and self.probe_at == self.first


class PacingBackend(Protocol):
    """Holds one ``PacingState`` for every pacer sharing a token; each call is atomic."""

    tuning: PacingTuning
    """The algorithm's constants (every pacer sharing the state must use the same)."""

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        """Count ``successes`` (accepted sends since this pacer's last call), then reserve
        up to ``count`` start slots at the current rate, capped at ``cap`` requests per
        second when the user stated a limit; see ``apply_reserve``."""

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        """Apply what happened (successes, a 429 and its hint); returns the new state.
        See ``apply_report``."""

    async def load(self) -> PacingState:
        """The current state (for display and tests)."""

    async def aclose(self) -> None:
        """Release what the backend opened (a connection, a background task); the
        client calls it when it closes.  Nothing to do for a backend that opened nothing."""

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """The client that paces with this backend: ``key`` names the shared state of its
        API root and token (a backend that shares none, or was given a key, ignores
        it); ``on_fallback`` is to be called each time the backend paces locally
        because its shared side failed (the client counts these)."""


def _count_successes(
    state: PacingState,
    now: float,
    successes: int,
    latest: float | None = None,
    earliest: float | None = None,
) -> PacingState:
    if successes <= 0:
        return state
    state = record(state, now, accepted=successes, successes=state.successes + successes, streak=0)
    state = stale_answers(state, successes, latest)
    state = stretch_answers(state, successes, latest, earliest)
    return not_the_probes(state, successes, latest)


def _learn_hint(
    state: PacingState,
    hint: float | None,
    pace: float | None,
    windowed: bool,
    cap: float,
    bound: bool = False,
    trip: float | None = None,
) -> PacingState:
    """``learn_window`` for a 429's hint (capped at ``cap`` as a pacer caps it, so the
    shared bounds hold the window to it); in a window's mode, a 429 whose hint says no
    reset (a rounded second, none) is no window's: a bucket's, say, which the
    window's bursts would flood, so the mode is left, unless it ``bound``s the reset
    of the wall it belongs to (``allowance.bounds_reset``)."""
    state = learn_window(state, None if hint is None else min(hint, cap), pace, trip)
    if windowed and not says_reset(hint) and not bound:
        state = attrs.evolve(state, window_hint=0.0)
    return state


def apply_reserve(
    state: PacingState,
    now: float,
    count: int,
    successes: int,
    cap: float | None,
    tuning: PacingTuning,
) -> tuple[PacingState, Reservation]:
    """``reserve`` as a pure function: count successes, restart an idle schedule (the
    curve frozen meanwhile), then reserve slots at the curve's rate (GCRA)."""
    if in_window_mode(state, cap):  # W at each reset, shared (``allowance``)
        state = _count_successes(state, now, successes)
        probe_at = math.inf
        if state.win_reset == state.pause_until > now + tuning.horizon:  # a wall's pause
            probe = grant_probe(state, now)
            if probe is not None:  # one send before the reset, to sound it
                return probe, Reservation(
                    now, now, 0.0, 1, probe.limit, probe.cuts, probe.pause_until,
                    window_end(probe), now,
                )  # fmt: skip
            probe_at = next_probe(state, now)
        state, first, n = reserve_window(state, now, count, tuning)
        state = record(state, now, offered=n)
        until = window_end(state)
        return state, Reservation(
            now, first, 0.0, n, state.limit, state.cuts, state.pause_until, until,
            probe_at if not n else math.inf,
        )  # fmt: skip
    # The steps below in one copy of the state (this runs once per batch of slots):
    # successes and the schedule touch different fields, so their order is free.
    state = restart_if_idle(state, now, tuning)
    rate = current_rate(state, now, tuning, cap)
    interval = 0.0 if rate is None else 1.0 / rate
    strict = cap is not None and rate == cap
    tat, first, n = slots(state, now, interval, count, tuning, strict)
    offered = n if interval > 0 else 0
    changes: dict[str, object] = {"tat": tat} if offered else {}
    if successes > 0:
        changes.update(successes=state.successes + successes, streak=0)
    state = record(state, now, accepted=max(successes, 0), offered=offered, **changes)
    return state, Reservation(now, first, interval, n, rate, state.cuts, state.pause_until)


def _pause(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    pace: float | None,
    windowed: bool,
    tuning: PacingTuning,
) -> PacingState:
    """A 429's hint: what it says of the limit (``_learn_hint``) and the pause; in a
    window's mode a rounded hint of its wall or its probe bounds the reset."""
    hint, sent = feedback.retry_after, feedback.throttled_at
    bound = bounds_reset(state, now, sent, hint)
    probe = probe_bounds_reset(state, sent, hint, windowed)
    trip = None if sent is None else now - sent  # the 429's round trip
    state = _learn_hint(state, hint, pace, windowed, tuning.max_hint_pause, bound or probe, trip)
    if bound and hint is not None:
        state = tighten(state, now, min(hint, tuning.max_hint_pause))
    before = state.pause_until
    state = on_hint(state, now, sent, hint, tuning)
    state = window_reset(state, before, says_reset(hint))
    if probe and hint is not None:
        state = reset_by(state, now, hint)
    return state


def apply_report(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    cap: float | None,
    tuning: PacingTuning,
) -> PacingState:
    """``report`` as a pure function: successes, then for a 429 the pause and the cut;
    the longest exact hint kept (``hint_max``: it bounds the search's end, and keeps the
    quiet probe off); a wall's 429 counted (``walls``: the same); a window's rounded 429
    noted for sounding its wall (``sounding.note_wall``)."""
    new = _report(state, now, feedback, cap, tuning)
    if feedback.throttled and feedback.walled:  # a wall seen: no quiet probe
        new = attrs.evolve(new, walls=new.walls + 1)
    if feedback.throttled:
        if feedback.sounding:
            new = probe_answered(new, feedback.throttled_at)
        new = note_wall(new, cap, feedback.throttled_at, now, feedback.retry_after)
    return new


def _report(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    cap: float | None,
    tuning: PacingTuning,
) -> PacingState:
    """``apply_report`` but for a wall's sounding: a probe's 429, an earlier window's,
    or any other (successes, the pause and the cut)."""
    if feedback.throttled and feedback.sounding:
        return _sounded(state, now, feedback, cap, tuning)
    if feedback.throttled and earlier_windows(state, feedback.throttled_at, cap):
        # An earlier window's 429, answered late: counted, nothing else.
        new = _apply_report(state, now, attrs.evolve(feedback, spread=True), cap, tuning)
        return attrs.evolve(new, win_throttles=new.win_throttles + 1)
    hint = feedback.retry_after
    if feedback.throttled and slot_wait(state, now, feedback.throttled_at, hint, cap):
        # A sliding window's slot (``allowance.slot_wait``): counted, the mode kept.
        new = _apply_report(state, now, attrs.evolve(feedback, spread=True), cap, tuning)
        return slot_waited(new, now, hint or 0.0)
    new = _apply_report(state, now, feedback, cap, tuning)
    if not feedback.throttled or feedback.spread or hint is None or hint <= 0:
        return new
    if not is_exact(hint):
        return new
    hint = min(hint, tuning.max_hint_pause)
    return attrs.evolve(new, hint_max=max(state.hint_max, hint))


def _sounded(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    cap: float | None,
    tuning: PacingTuning,
) -> PacingState:
    """A probe's 429 that looked for a window's reset (``sounding``): counted as the
    spread's are and as none of the window's refusals; its rounded hint bounds the reset
    of the pause that ends at one."""
    quiet = attrs.evolve(feedback, spread=True, climb=False)
    new = _apply_report(state, now, quiet, cap, tuning)
    new = attrs.evolve(new, win_throttles=new.win_throttles + 1)
    hint = feedback.retry_after
    if hint is None or hint < 1 or is_exact(hint) or not in_window_mode(new, cap):
        return new
    if new.win_reset == new.pause_until > now:
        new = tighten(new, now, min(hint, tuning.max_hint_pause))
    return new


def _apply_report(
    state: PacingState,
    now: float,
    feedback: PacingFeedback,
    cap: float | None,
    tuning: PacingTuning,
) -> PacingState:
    """``report`` as a pure function: successes, then for a 429 the pause and the cut."""
    estimate = None
    if feedback.throttled and state.limit is None:
        estimate = first_estimate(state, now, feedback.local_rate, tuning)
    first, successes = feedback.earliest_accepted, feedback.successes
    state = _count_successes(state, now, successes, feedback.latest_accepted, first)
    if not feedback.throttled:
        return state
    state = attrs.evolve(state, throttles=state.throttles + 1)
    if feedback.spread:  # the arrival spread's 429: counted, no pause, no cut
        return climb(state, now, tuning) if feedback.climb else state
    tat = state.tat
    paused_before = max(state.pause_until, now)
    refused_since = max(state.pause_until, state.cut_at)
    # The rate that drew the 429 is the one its request was admitted at (a round trip
    # ago: while the rate doubles, the rate now is well past it).
    admitted = now if feedback.throttled_at is None else min(feedback.throttled_at, now)
    windowed = in_window_mode(state, cap)
    drew_at = current_rate(state, admitted, tuning, cap)
    state = _pause(state, now, feedback, drew_at or estimate, windowed, tuning)
    resume = max(state.pause_until, now)
    bound = hint_bound(state, now, feedback.retry_after, drew_at or estimate)
    first = state.limit is None
    if first:
        state = first_cut(state, now, estimate, resume, now - admitted)
        if bound is None:
            return state
    limit = state.limit
    if limit is None:  # (the first cut set it)
        return state
    if bound is not None and state.searching:
        # A bucket's exact hint names the rate: the search ends there (the rate that
        # drew it counts only for a request sent in the search); a bound above the
        # search's rate says it is still below the rate: no cut, the search goes on
        # (the 429 is the burst's end, or arrivals bunched).
        drawn = drew_at if admitted > state.cut_at else None
        hint = feedback.retry_after
        state = bounded(state, now, bound, drawn, hint, resume, tuning, now - admitted)
        return attrs.evolve(state, cut_at=max(state.cut_at, tat))
    admits = search_admits(state, now, feedback, tuning)
    if admits is not None:
        return search_again(state, admits, resume, tat)
    if new_episode(state, now, feedback, tuning):
        drew = drew_at or limit
        return cut_episode(state, now, feedback, drew, windowed, resume, cap, tuning, bound, tat)
    if bound is not None and state.cuts <= SEARCH_CUTS:
        # The volley of the cut that ended the search: its longest hint is nearly the
        # rate.  (Later, what the limiter accepts measures it: a bucket that refills
        # at once, a fresh one after a change, accepts more than one's hint says.)
        state = bounded(state, now, bound, None, None, resume, tuning, now - admitted)
    # A pause without a cut freezes the curve for its duration (an outage's, longer).
    paused_before = _frozen_from(state, feedback, bound, paused_before, refused_since)
    return freeze(state, paused_before, resume)


def _frozen_from(
    state: PacingState,
    feedback: PacingFeedback,
    bound: float | None,
    paused_before: float,
    refused_since: float,
) -> float:
    """Where a pause without a cut starts freezing the curve: at the pause, or earlier.

    A bucket's exact hint (``hint_bound``: "its next slot") for a request sent since the
    last cut, with no success since it (a limiter refusing everything: an outage), freezes
    it since the last pause ended (or the cut) too: every answer then was a 429 that could
    not cut (``new_episode``), and a refused client does not raise its rate (an outage
    answering exact 10 ms hints drew 2,016 sends a second from 40, the curve climbing past
    its limit and doubling; ``tests/test_pacing_outage_hints.py``).  Only such hints: a
    stale 429, sent before the cut, says nothing of the rate since; and a window's rounded
    hints or a wall with none, frozen too (branch ``storm``: the family's median worse,
    sliding windows' worst 3.84x -> 4.39x), likely (not traced) held the curve at its cut
    through the wall, to climb back from there after it.
    """
    sent = feedback.throttled_at
    if (
        bound is not None
        and sent is not None
        and sent > state.cut_at
        and state.successes <= state.successes_at_cut
    ):
        return min(paused_before, refused_since)
    return paused_before


class InMemoryPacingBackend:
    """The default backend: the state lives in this process (one event loop, so every
    call is atomic: none of them awaits)."""

    def __init__(
        self,
        tuning: PacingTuning | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        state: PacingState | None = None,
    ) -> None:
        self.tuning = tuning or PacingTuning()
        self._clock = clock
        self.state = state or PacingState()
        """The current state (replace it to seed a pacer in tests)."""

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        """Count successes, then reserve up to ``count`` slots (see the protocol)."""
        return self.reserve_now(count, successes=successes, cap=cap)

    def reserve_now(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        """``reserve`` without awaiting: the pacer's fast path when nobody waits."""
        self.state, reservation = apply_reserve(
            self.state, self._clock(), count, successes, cap, self.tuning
        )
        return reservation

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        """Apply what happened; returns the new state."""
        return self.report_now(feedback, cap=cap)

    def report_now(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        """``report`` without awaiting (a window's successes, counted as they come)."""
        self.state = apply_report(self.state, self._clock(), feedback, cap, self.tuning)
        return self.state

    def give_back(self, first: float, end: float, hint: float | None) -> None:
        """Slots from ``first`` until ``end`` (the ``tat`` after them) that this process's
        pacer dropped unsent when a 429 paused it: when the hint says when the limiter
        reopens, the schedule resumes at the pause's end, not after them (each dropped
        batch was a gap of up to ``horizon`` with nothing sent, and the accepted rate the
        next cut read fell with it).  Only if nobody reserved after them; never before
        now (a schedule behind looks busy, and freezes the curve) or the last cut's
        ``cut_at``.  (A pause on no hint or a rounded one is a guess: its gap stays.)"""
        state = self.state
        if says_reset(hint) and abs(state.tat - end) < 1e-6:
            resume = max(first, state.pause_until, state.cut_at, self._clock())
            self.state = attrs.evolve(state, tat=min(resume, state.tat))

    async def load(self) -> PacingState:
        """The current state."""
        return self.state

    async def aclose(self) -> None:
        """Nothing to release: the state is a field of this object."""

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """Nothing to name or count: the state is this process's alone."""
