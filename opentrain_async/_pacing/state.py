"""The values the pacing parts exchange: learned state, tuning, reservation, feedback.

``PacingState`` holds *everything* the pacer learns about the server's limit, so that a
backend shared by several processes (Redis) can keep all of it in one place and update it
atomically.  Every field is a number (or None, or a tuple of ints): a Redis hash can hold
it field by field.  Times are on the backend's clock (seconds, any origin).
"""

from __future__ import annotations

from typing import Any

import attrs

from opentrain_async._errors import ConfigurationError

__all__ = [
    "SAMPLE_BUCKETS",
    "SAMPLE_SECONDS",
    "SHARED_INITIAL_WINDOW",
    "SHARED_SYNC_EVERY",
    "PacingFeedback",
    "PacingState",
    "PacingTuning",
    "evolve",
]

SAMPLE_BUCKETS = 10
"""Accepted-rate samples are kept in this many buckets ..."""
SAMPLE_SECONDS = 0.1
"""... of this many seconds each (one second of history)."""

SHARED_SYNC_EVERY = 0.005
"""``PacingTuning.sync_every`` for a backend shared by several processes (Redis): one
round trip per 5 ms per process until paced (``benchmarks.pacing_sim`` "processes")."""

SHARED_INITIAL_WINDOW = 1
"""``PacingTuning.initial_window`` for a shared backend: each process starts with one
request in flight (eight processes with four each sent 32 at once into a limit none of
them knew yet; ``benchmarks.pacing_sim`` "processes": 429s 5.8% -> 3.9% at 8)."""

_EMPTY = (0,) * SAMPLE_BUCKETS


@attrs.frozen
class PacingState:
    """What the pacer has learned about the server's limit (immutable; parts return new ones)."""

    limit: float | None = None
    """The learned sustainable rate in requests/second (CUBIC's W_max, or the search's
    base); None until the first 429: unpaced."""
    searching: bool = True
    """No real cut yet: the rate doubles from ``limit`` every ``doubling`` seconds."""
    origin: float = 0.0
    """Where the rate curve starts (search or cubic): the end of the pause after a cut,
    moved forward by idle time and pauses that came without a cut (the curve freezes)."""
    recover: float = 0.0
    """Seconds the cubic curve takes to climb back to ``limit`` (0: the tuning's default)."""
    cut_at: float = float("-inf")
    """When the pause after the last cut ended: a 429 for a request admitted before it
    does not cut again."""
    cuts: int = 0
    """Cuts made so far (first estimate included): the episode number."""
    successes: int = 0
    """Sends accepted, in total (as reported)."""
    successes_at_cut: int = 0
    """``successes`` at the last cut: a 429 with no success since the cut does not cut."""
    throttles: int = 0
    """429s reported."""
    pause_until: float = 0.0
    """No request starts before this time (an exact hint, or the sure part of a whole one)."""
    pause_began: float = float("-inf")
    """When the current (latest) pause was set: 429s admitted before it are its burst."""
    streak: int = 0
    """429s since the last success that extended the short pause (it doubles with each)."""
    window_hint: float = 0.0
    """The longest whole-second hint of 2 s or more seen since the last fractional one:
    the limit is a window of seconds (every whole hint is then waited out in full, and
    its rate measured over whole episodes); 0 when not."""
    tat: float = float("-inf")
    """GCRA: the theoretical start time of the next slot."""
    sample_at: float = 0.0
    """Start of the newest sample bucket (a multiple of ``SAMPLE_SECONDS``)."""
    accepted: tuple[int, ...] = _EMPTY
    """Sends accepted per sample bucket, oldest first."""
    offered: tuple[int, ...] = _EMPTY
    """Slots handed out (requests offered to the server) per sample bucket, oldest first."""
    win_size: int = 0
    """A window's allowance W (``allowance``): sends the last whole window accepted
    (0: not known yet)."""
    win_opened: float = float("-inf")
    """When the current window opened (its reset)."""
    win_base: int = 0
    """``successes`` when it opened: what it accepted since is the rest."""
    win_throttles: int = 0
    """``throttles`` when it opened (its answers: successes and 429s since)."""
    win_sent: int = 0
    """Sends granted in the current window, its probes included."""
    win_granted: float = float("-inf")
    """When the last of them was granted."""
    win_probed: int = 0
    """``successes`` when the window's latest probe went."""
    win_reset: float = float("-inf")
    """The end of the latest pause on a hint that says when the window resets."""
    win_first: float = float("inf")
    """The earliest admission among the current window's successes (inf: none yet)."""
    win_last: float = float("-inf")
    """The latest admission among them, its probes' left out (-inf: none yet)."""
    win_stretch: float = 0.0
    """The last whole window's ``win_last - win_first``: its W goes spread over as long
    from the next reset (``allowance``), as a sliding window frees its slots; 0: at once."""
    win_ramp: float = 0.0
    """The ramp's stretch (slow start's first to last success before the first window
    opened): the shape a sliding window frees its first W in, taken as ``win_stretch``
    once a W send's slot-wait 429 tells it from a fixed one (``allowance.slot_wait``)."""
    win_span: float = 0.0
    """The first window's reset minus the ramp's first success: how long a sliding
    window's oldest slot was held, its length (a fixed one's is no shorter), taken as
    ``window_hint`` once told sliding if longer; 0: not known."""
    win_behind: float = 0.0
    """Seconds the current window's spread runs behind its stretch: a slot-wait 429
    names when the next slot frees, and the share it gives back goes a slot after
    that, the rest after it (``allowance.slot_waited``)."""
    win_claim: float = float("-inf")
    """When the latest slot-wait 429 of the window said its next slot frees (-inf:
    none): a send admitted after it, refused with no success admitted since, proves the
    claim false, and its 429 is no slot's (``allowance.slot_wait``)."""
    hint_max: float = 0.0
    """The longest exact hint seen: a token bucket's rate is at most its inverse
    (``pause.bucket_bound``, until the search's end); 0: none.  Any seen keeps the quiet
    probe off (``curve.quiet_probe``)."""
    snd_low: float = float("-inf")
    snd_high: float = float("-inf")
    """The window's reset being sounded is in (``snd_low``, ``snd_high``] (``sounding``;
    ``snd_high`` past: no wall known): the wall's rounded 429s, from every pacer on
    the state, intersected."""
    snd_left: int = 0
    """Probes the sounded wall may still send (one less at each probe's answer)."""
    snd_probes: int = 0
    """Probes the wall was given (0: not sounded; its refused requests keep their hint)."""
    snd_out: float = float("-inf")
    """When the probe in flight was granted (-inf: none): no other goes until its answer,
    or ``ANSWER_WAIT`` after (its pacer died or lost it: the probe goes again)."""
    trip: float = 0.0
    """The round trip (admission to answer) of the 429 that made the last cut: a curve
    quiet for long climbs past its limit by one request per round trip each round trip
    (``curve.quiet_probe``); 0: not known (no such climb)."""
    walls: int = 0
    """Walls' 429s reported (``PacingFeedback.walled``: a request admitted after a
    guessed pause and refused, the shut limiter's): a limiter seen shut is a window or
    a limit far below the pace, which the quiet probe stays off (``curve.quiet_probe``)."""


_FIELDS = tuple(field.name for field in attrs.fields(PacingState))
_FIELD_SET = frozenset(_FIELDS)
_new = object.__new__
_set = object.__setattr__


def evolve(state: PacingState, **changes: Any) -> PacingState:
    """``attrs.evolve`` for ``PacingState``, at half the cost: a reservation (once per
    batch of slots, so up to thousands per second) copies the state once."""
    for name in changes:
        if name not in _FIELD_SET:
            raise TypeError(f"PacingState has no field {name!r}")
    new = _new(PacingState)
    for name in _FIELDS:
        _set(new, name, getattr(state, name))
    for name, value in changes.items():
        _set(new, name, value)
    return new


@attrs.frozen
class PacingTuning:
    """Constants of the pacing algorithm (chosen with ``python -m benchmarks.pacing_sim``).

    ``beta``: after a cut the curve restarts at ``beta`` times the learned limit.
    ``recover``: seconds the cubic curve takes to climb back to the limit, after which
    it probes above it.  ``doubling``: seconds per doubling while searching.
    ``max_pause``: the short whole-client pause on a one-second (possibly rounded)
    hint, doubling while 429s come back to back; ``max_hint_pause`` caps the pause on
    an exact hint or a window's.  ``tolerance``: how late a slot may be taken and
    still count as on time (GCRA's burst tolerance: slots missed by timer lateness are
    released together instead of lost).  ``idle_after``: a schedule this far behind
    means the sender idled: it restarts without a burst, the curve frozen meanwhile.
    ``horizon``: a reservation covers at most the slots due within this many seconds
    (none when the next is further away).  ``initial_window`` and
    ``slow_start_growth``: the in-flight window before the first 429, grown by a
    twentieth per success (whatever is in flight when a fixed window or a bucket's
    burst fills comes back 429, so quick successes open it only a little);
    ``slow_start_doubling``: it also doubles per this many seconds spent full, so where
    round trips are long time grows it instead (None: successes only).
    ``sync_every``: before any limit is known, a pacer checks in with its backend this
    often (seconds) to learn of a 429 another process saw; short for a shared backend
    (``SHARED_SYNC_EVERY``), where every request sent meanwhile into a limit already
    found costs a 429.  It is local to each pacer.  ``recover_round_trips``: after a
    cut the curve takes at least this many round trips (a 429's admission to its
    answer) to climb back, so a sender far from the server probes less often
    (pacing_sim, 40 ms latency: 1.10x and 4.3% 429s at 0, 1.06x and 2.6% at 20).
    """

    beta: float = 0.9
    recover: float = 0.3
    doubling: float = 0.1
    max_pause: float = 0.05
    max_hint_pause: float = 60.0
    tolerance: float = 0.01
    idle_after: float = 0.1
    horizon: float = 0.02
    initial_window: int = 4
    slow_start_growth: float = 0.05
    slow_start_doubling: float | None = 0.1
    sync_every: float = 0.05
    recover_round_trips: float = 20.0

    def __attrs_post_init__(self) -> None:
        """Refuse values the algorithm cannot work with, naming the field."""
        if not 0 < self.beta < 1:
            raise ConfigurationError(f"beta must be between 0 and 1 (exclusive), got {self.beta!r}")
        for name in ("recover", "doubling", "max_pause", "max_hint_pause", "sync_every"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("tolerance", "horizon", "idle_after", "recover_round_trips"):
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.slow_start_doubling is not None and not self.slow_start_doubling > 0:
            raise ConfigurationError(
                f"slow_start_doubling must be > 0 or None, got {self.slow_start_doubling!r}"
            )
        if self.initial_window < 1:
            raise ConfigurationError(f"initial_window must be >= 1, got {self.initial_window!r}")


@attrs.frozen
class PacingFeedback:
    """What happened to requests since the last call, as a pacer reports it to its backend."""

    successes: int = 0
    """Sends accepted since the last report (counted locally, flushed with each call)."""
    throttled_at: float | None = None
    """A 429 came back for a request admitted at this time (backend clock); None: no 429,
    or a request admitted before this pacer had any reservation (counts as before the cut)."""
    retry_after: float | None = None
    """The 429's hint in seconds (a float: fractional means exact), if it had one."""
    local_rate: float | None = None
    """Sends per second this pacer got through before its first 429 (the first estimate)."""
    throttled: bool = False
    """True when this feedback reports a 429."""
    spread: bool = False
    """The 429 is the arrival spread's, not a lower limit's (``Pacer._jitter``): it is
    counted, and neither pauses nor cuts."""
    climb: bool = False
    """A spread's 429 (``spread``) for a one-token bucket whose limit lies far above the
    rate (``ArrivalSpread.far``): the curve climbs to it (``curve.climb``)."""
    latest_accepted: float | None = None
    """The latest admission time (backend clock) among ``successes``; None: not known.
    Successes all admitted before a window's probe went are not its (``allowance``)."""
    earliest_accepted: float | None = None
    """The earliest admission time (backend clock) among ``successes`` (and those a
    reservation counted since the last report, untimed); None: not known.  The ramp's
    first success: its stretch is the shape a sliding window frees its first W in."""
    walled: bool = False
    """The 429 is a shut limiter's (``probe.WallProbe.walled``): its request went after
    a guessed pause and the wall still held.  A wall refuses every rate, so with a
    rounded hint its cut reads the rate of the window it stands for, not the rate that
    drew it (``episode.wall_cut``)."""
    sounding: bool = False
    """The 429 is a probe's that looked for a window's reset (``sounding``): counted,
    no pause, no cut, the window's mode kept, and its rounded hint's bound ends the
    pause at a reset sooner (``allowance.tighten``)."""
