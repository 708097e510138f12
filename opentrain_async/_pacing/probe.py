"""A shut limiter: one probe at a time until it admits again (local to one pacer).

A 429 whose hint does not say when the limiter reopens (none, 0, or a rounded second:
not ``pause.says_reset``) pauses briefly (``pause.on_hint``): the pause is a guess.
When a request admitted after such a pause is refused too, the limiter is shut (a
window that filled, or a limit far below the pace), not a little over its rate.  Each
pause end then lets one request through (the probe) and nothing else starts until its
answer: a success reopens the pace, a 429 pauses again (the pause doubling, as while
429s come back to back).  Before, every pause end sent a round trip's worth of
requests at the pace into the shut limiter: seed 271 of ``benchmarks.family_sim`` (a
window of 30 per 14.6 s, no hints) drew about seven 429s per pause, 3.3 per message;
with the probe 1.3, in 1.06x the strict ideal instead of 1.58x.  Hints that say when
the limiter reopens (exact ones, a window's) end their pause where sends are admitted,
and a window's mode (``Pacer._window_mode``) probes its own way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from .pause import says_reset
from .waiter import until_done

__all__ = ["WallProbe"]

_NONE = float("inf")


class WallProbe:
    """Whether the limiter is shut, and whether its probe is out (backend clock)."""

    __slots__ = (
        "_changed",
        "_clock",
        "_guess_ended",
        "_lift",
        "_lift_refused",
        "_longest",
        "_opened",
        "_refused",
        "_reset_gap",
        "_since",
        "_sleep",
        "_wall",
        "first_send",
        "not_before",
        "out",
        "period",
        "probe_at",
        "shut",
    )

    def __init__(
        self,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
        longest: float = 60.0,
    ) -> None:
        self._clock = clock  # the backend's clock, as every time here
        self._sleep = sleep
        self._longest = longest
        """The most a wall's first probe is held back (``max_hint_pause``): one long
        outage taught a wall and a period that long, and held the next wall's probe
        back nearly as long again while the server may answer at once."""
        self.first_send: float | None = None
        """The admission of the first request answered: the limiter's first period began
        no later (an answer comes for one of the first requests sent)."""
        self.period = 0.0
        """Seconds the limiter's walls are at least apart (0: unknown), learned from
        when they lifted: each reset comes no sooner than the last one plus this."""
        self.not_before = float("-inf")
        """No probe of the current wall goes before this (see ``_wall_opens``)."""
        self._since: float | None = None  # first refusal since the last success
        self._refused = float("-inf")  # latest refused admission since then
        self._lift: float | None = None  # when the last wall lifted (its probe's admission)
        self._lift_refused = float("-inf")  # the last refusal before that
        self._wall = 0.0  # how long the last wall held (first to last refusal)
        self._reset_gap = float("inf")
        """The most two walls' resets were apart (a wall's reset came after its last
        refusal, no later than its lift): a window's period is no longer (``_lifted``)."""
        self.shut = False
        """A request admitted after a guessed pause was refused: one probe at a time."""
        self.out = False
        """The probe is claimed or in flight: nobody else starts."""
        self.probe_at = _NONE
        """When the probe was admitted (an answer for a later send ends it too)."""
        self._guess_ended: float | None = None  # a guessed pause's end, refused since
        self._changed = asyncio.Event()
        self._opened = asyncio.Event()  # set when a shut wall lifts (cleared as it shuts)

    def refused(
        self, sent_at: float, hint: float | None, paused_until: float, counts: bool
    ) -> None:
        """A 429 for a request admitted at ``sent_at`` with ``hint``, after which every
        request is paused until ``paused_until``.  ``counts`` False: a 429 that pauses
        nothing (the arrival spread's) or is a window's, whose pause ends at its reset:
        no evidence either way.  The guess is the first guessed pause since the last
        success (the 429s of requests sent before it end, and extend it, one by one)."""
        if not counts:
            pass
        elif says_reset(hint):
            if not self.shut:  # a hint that says when: its pause is no guess
                self._guess_ended = None
        else:
            if self._since is None:
                self._since = sent_at
            self._refused = max(self._refused, sent_at)
            if self._guess_ended is None:
                self._guess_ended = paused_until
            elif sent_at >= self._guess_ended and not self.shut:
                self.shut = True
                self._opened.clear()
                self.not_before = min(self._wall_opens(), sent_at + self._longest)
        self._answered(sent_at)

    def walled(self, sent_at: float, hint: float | None) -> bool:
        """A 429 for a request admitted at ``sent_at`` with ``hint`` is the wall's: the
        limiter is shut already (its probe refused), or this refusal shuts it (see
        ``refused``; asked before it)."""
        if says_reset(hint):
            return False
        if self.shut:
            return True
        return self._guess_ended is not None and sent_at >= self._guess_ended

    def _wall_opens(self) -> float:
        """The earliest a new wall may lift, from the last one: its reset comes no
        sooner than the last reset plus the period (a window's), and, by the last
        wall, not before it has held as long (so a bucket's short walls stay short)."""
        if not self._wall or self._since is None:
            return float("-inf")
        return min(self._lift_refused + self.period, self._since + self._wall)

    def _lifted(self, sent_at: float) -> None:
        """The wall lifted for a request admitted at ``sent_at``: learn its length and
        the period (the reset came after the last refusal, and the one before it no
        later than the last lift, or the first send)."""
        if self._since is None:
            return
        before = self._lift if self._lift is not None else self.first_send
        if before is not None:
            self.period = max(self.period, self._refused - before)
        gap = float("inf")
        if self._lift is not None:
            # Two resets of a window are a whole number of periods apart, so its period
            # is no longer than from the last wall's last refusal to this lift.
            gap = sent_at - self._lift_refused
            self._reset_gap = min(self._reset_gap, gap)
        if self.period > self._reset_gap:
            # A period longer than two walls' resets were apart is no window's: the
            # limiter changed (an outage, a limit dropped to zero for a while, then
            # back).  Learned, it held the next ordinary wall's probe back as long as
            # the outage (10/s, 15 s refusing all, hints of 1: 13 s with nothing sent,
            # tests/test_pacing_outage_hints.py): forget it, as at the start.  The gap
            # just measured stays: it is the latest evidence of how far apart the
            # resets are.  Forgetting it too (``inf``) let the next lift learn a period
            # from one gap alone, so an outage right after a forgetting lift was learned
            # as a window's period after all, by which wall happened to lift last (the
            # 13 s stall again, on Python 3.12's task order with round3's bound;
            # tests/test_pacing_wall_probe_order.py).  A window that truly grew is
            # forgotten once more, then learned from its own gaps.
            self.period, self._reset_gap = 0.0, gap
        self._wall = self._refused - self._since
        self._lift, self._lift_refused = sent_at, self._refused

    def accepted(self, sent_at: float) -> None:
        """A success for a request admitted at ``sent_at``: the limiter admits again
        once one sent after the last guessed pause (the probe, for one) gets through."""
        probe = self.out and sent_at >= self.probe_at  # (whatever clock the pause was on)
        if probe or self._guess_ended is None or sent_at >= self._guess_ended:
            if self.shut:
                self._lifted(sent_at)
                self._opened.set()
            self._guess_ended = self._since = None
            self._refused = float("-inf")
            self.shut = False
        self._answered(sent_at)

    def errored(self, sent_at: float) -> None:
        """An answer that was neither (or a 429 whose report failed): a probe's ends it."""
        self._answered(sent_at)

    def _answered(self, sent_at: float) -> None:
        if self.first_send is None:
            self.first_send = sent_at
        if self.out and sent_at >= self.probe_at:
            self.out = False
            self.probe_at = _NONE
        if not self.holding():
            self._changed.set()

    def holding(self) -> bool:
        """True while shut with the probe out: nobody else may start."""
        return self.shut and self.out

    def admit(self, try_now: Callable[[], float | None]) -> float | None:
        """``Pacer.try_acquire`` while shut: ``try_now`` admits the probe, if none is out."""
        if self.out or self._clock() < self.not_before:
            return None
        self.out = True
        at = try_now()
        self._sent(at)
        return at

    async def gate(
        self, acquire: Callable[[], Awaitable[float]], give_back: Callable[[bool], None]
    ) -> float:
        """``Pacer.acquire`` through the gate: while shut, the first request the pace
        admits (no sooner than ``not_before``) is the probe, and nobody else's admission
        returns until its answer: they give their slot back (``give_back(False)``: the
        slow-start window's ``leave``) and wait.  The probe is not chosen on the way in:
        requests already queued for slots would each spend one before it got its own."""
        while True:
            while self.holding():
                self._changed.clear()
                await self._changed.wait()
            wait = self.not_before - self._clock() if self.shut else 0.0
            if wait > 0:
                # Held back until ``not_before``, but woken if the wall lifts: a request
                # sent before it shut may be admitted (``accepted``), and then nothing
                # holds the pace back.  Sleeping the whole wait, every request of a
                # job stayed asleep that long after the wall had lifted (13 s after an
                # outage: tests/test_pacing_wall_probe_order.py).  (Only a lift wakes
                # them: woken by every answer, they slept again in another order, and
                # which of them went first moved draws both ways in the simulator.)
                opened = asyncio.ensure_future(self._opened.wait())
                try:
                    await until_done(opened, self._sleep(wait))
                finally:
                    opened.cancel()
                continue
            at = await acquire()
            if not self.shut:
                return at
            if not self.out and self._clock() >= self.not_before:
                self.out = True
                self._sent(at)
                return at
            give_back(False)

    def _sent(self, at: float | None) -> None:
        """The claimed probe was admitted at ``at`` (None: it never went)."""
        if at is None:
            self.out = False
            self.probe_at = _NONE
            self._changed.set()
        else:
            self.probe_at = at
