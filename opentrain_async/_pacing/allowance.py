"""A window's allowance at each reset: W at once, then one probe (pure functions).

Once a hint says the limit is a window of seconds (``state.window_hint``) and no
stated limit asks for even spacing, the rate schedule is set aside: a window of W per
T admits W at each reset, and the ideal sends them at once.  The allowance lives in
the ``PacingState``, so every pacer sharing it (processes on one Redis, or one
process alone) draws from one W per window, not W each:

* **A reset** is the end of a pause on a hint that says when the window resets (an
  exact one, or a whole one of ``WINDOW_HINT`` or more: ``win_reset``).  The first
  reservation at or after it opens a new window: W is what the last one accepted
  (the successes reported since it opened), or its grants not refused if more, up
  to its allowance (answers lost with a process that died or froze were most likely
  successes), or stays as it was if that was none.
* **W at once**: reservations hand out the window's sends all at the reset (interval
  0), up to W in total; W unknown (the first window), as many as are asked.
* **W spread over a reopening**: a window whose own sends drew 429s (a sliding one
  frees each slot a window after the send that took it: W at its reset, the oldest
  slot's, was mostly refused) hands out its next W spread over the stretch from its
  first to its last success (``win_stretch``, at most half the hint), the k-th at the
  reset plus k / W of it; a window that refused none of its sends (a fixed one) keeps
  the stretch it had, none at first, so its W goes at once.
* **Past W, one probe for all**: one send, and only once every send of the window is
  answered (else a probe that overtakes W's own sends says nothing), or
  ``ANSWER_WAIT`` after the last grant (an answer lost to an error or a crash; still
  missing at the next, they are written off and their share goes again).  Its
  429 pauses everyone to the next reset (``on_hint``); more successes reported since
  it went than answers were then missing (``win_probed``) mean the window has room
  past W (it grew, reset unseen, or answers were lost): the allowance doubles, its
  probes in it, in the same window, and the next reset's W counts it all.
* **A window lasts its hint**: a reservation past ``win_opened + window_hint`` with no
  429 to say when the next reset is (its W late, a probe not refused yet) finds it
  reset unseen: a new one opens at the reset the hint implies, W as it was, the sends
  still unanswered counted as its own (they may land in it).  A reset long past (the
  first reservation after a pause came windows later) opens the window of now.
* **Stale answers**: successes for sends admitted before the reset the window opened
  at (a process stopped or slowed while holding them) are an earlier window's: they
  count neither in this window's W nor as its probe's.  A 429 for such a send
  (``earlier_windows``) is counted only: its hint, from when it was answered, says
  nothing of the reset to come.
"""

from __future__ import annotations

import math

from .pause import is_exact, left_to_pacer
from .state import PacingState, PacingTuning, evolve

__all__ = [
    "ANSWER_WAIT",
    "LONG_HINT",
    "bounds_reset",
    "earlier_windows",
    "in_window_mode",
    "not_the_probes",
    "paces_reset",
    "probe_bounds_reset",
    "reserve_window",
    "slot_wait",
    "slot_waited",
    "stale_answers",
    "stretch_answers",
    "window_average",
    "window_end",
    "window_rate",
    "window_reset",
]

ANSWER_WAIT = 1.0
"""Seconds after a window's last grant that its probe goes even with answers missing:
longer than any round trip of the family (200 ms +-50%) plus a success's report lag,
short against a window (1-60 s); an answer is lost only to an error or a crash."""


LONG_HINT = 3.0
"""A whole hint this long (seconds) is the pacer's to wait even at a window's first wall
(``paces_reset``): the shortest above the 2 s family's (whose windows' hints are at most
2), where a request's own jitter (10% of its hint) costs 0.3 s or more."""


def in_window_mode(state: PacingState, cap: float | None) -> bool:
    """A window of seconds is known and no stated limit asks for even spacing."""
    return state.window_hint > 0 and state.limit is not None and cap is None


def paces_reset(
    state: PacingState, retry_after: float, cap: float | None, tuning: PacingTuning
) -> bool:
    """A bulk send's 429 with a window's rounded hint (whole seconds, 2 or more) is the
    pacer's to wait, not the request's (``RetryPolicy.compute_wait``, ``reset_paced``):
    the hint is an upper bound on the reset, and the pacer's pause ends at the earliest
    bound of the wall's hints (``tighten``), where each refused request waiting out its
    own hint plus jitter (up to 10% of it) woke late.  Left to the pacer at a short
    window's first wall, the requests went together at the pause's end, where a sliding
    window freeing its slots one by one refused most of them (branch ``resetpos``: seed
    340179, 50% -> 89% 429s).  So only where that is safe (branch ``wallretry2``):

    - a hint of ``LONG_HINT`` or more, up to the longest pause a hint gets (a longer
      one's pause is cut to it: waited out in full): 60 s family, tuning seeds 0-499,
      1.138x -> 1.114x median (83 draws better, 4 worse), the 429 share's p90 85.2%;
    - a shorter one (2 s) once the window's mode has opened a window: W goes at each
      reset, spread over the stretch its successes took (``_spread``).  2 s family,
      tuning seeds 0-499 and 3000-3499, against the first rule alone: 12 draws better,
      1 worse, no draw's 429 share moved by 2 points."""
    if LONG_HINT <= retry_after <= tuning.max_hint_pause:
        return True
    return in_window_mode(state, cap) and state.win_opened > -math.inf


def window_rate(state: PacingState) -> float | None:
    """The window's average, W per hint (a hint is the time left to the reset, perhaps
    a fraction of the window), at most the learned limit: the rate a pacer shows.  The
    curve is set aside in the window's mode and, never frozen by a reservation, read
    raw it climbed to absurd rates (565,957/s beside a limit of 0.5/s)."""
    if state.limit is not None and state.win_size and state.window_hint > 0:
        return min(state.win_size / state.window_hint, state.limit)
    return state.limit


def window_average(state: PacingState, since: float) -> float:
    """What a window let through per second over the ``since`` seconds from the last
    cut (a reset) to the end of a 429's pause: its successes over that time, or, that
    time shorter than a window for sure (half its hint: an exact hint is at most the
    window, a whole one of h s says more than h - 1), its W (or more) per hint.  A
    sliding window reopens slot by slot, so part of W sent at its reset is refused a
    few milliseconds after it: counted over those milliseconds, the average read as a
    window's limit was the handful admitted so far (seed 5921, 967 per 1.39 s: 193/s,
    4.40x)."""
    got = state.successes - state.successes_at_cut
    if 2 * since < state.window_hint:
        return max(got, state.win_size) / state.window_hint
    return got / since


def window_end(state: PacingState) -> float:
    """When the current window ends (the next reset its hint implies; inf while W is
    not known): a grant of the window not sent by then is given back
    (``Pacer.expired``), not sent into the next window, whose W is handed out anew."""
    if state.win_size and state.win_opened > -math.inf:
        return state.win_opened + state.window_hint
    return math.inf


def window_reset(state: PacingState, before: float, exact_or_window: bool) -> PacingState:
    """After ``on_hint``: a pause it extended past ``before`` on a hint that says when
    the window resets ends at a reset."""
    if exact_or_window and state.pause_until > before:
        return evolve(state, win_reset=state.pause_until)
    return state


def bounds_reset(
    state: PacingState, now: float, sent_at: float | None, retry_after: float | None
) -> bool:
    """A 429 of the wall whose pause ends at a window's reset (its request admitted
    before that pause began) with a hint rounded up to whole seconds: the reset comes
    no later than ``now`` plus it, so that pause ends there if sooner (``tighten``),
    and a rounded second says no other kind of limit.  A window of a second or two
    refuses its wall with hints of 2 s and then 1 s as its reset comes within the
    second: waited in full from the first 429, the 2 s opened each window up to a
    second after its reset; taken for a bucket's at the first 1 s, they left the
    window's mode for a curve cut to the window's average."""
    return (
        retry_after is not None
        and retry_after >= 1
        and not is_exact(retry_after)
        and sent_at is not None
        and sent_at < state.pause_began
        and state.win_reset == state.pause_until > now
    )


def tighten(state: PacingState, now: float, retry_after: float) -> PacingState:
    """For a 429 that ``bounds_reset``: the pause and the reset no later than its bound."""
    end = now + retry_after
    if end < state.pause_until:
        return evolve(state, pause_until=end, win_reset=end)
    return state


def probe_bounds_reset(
    state: PacingState, sent_at: float | None, retry_after: float | None, windowed: bool
) -> bool:
    """In a window's mode, its probe past W (admitted at or after the last grant)
    refused with a rounded second: the next reset comes within that second
    (``reset_by``), and the window's mode stays.  A window whose probe goes less than
    a second before its reset gets one; taken for a bucket's, it left the mode for the
    curve set aside there."""
    return (
        windowed
        and retry_after is not None
        and left_to_pacer(retry_after)
        and sent_at is not None
        and state.win_sent > state.win_size > 0
        and sent_at >= state.win_granted
    )


def reset_by(state: PacingState, now: float, retry_after: float) -> PacingState:
    """For a probe that ``probe_bounds_reset``: everyone pauses to the bound, a reset."""
    end = now + retry_after
    if end > state.pause_until:
        return evolve(state, pause_until=end, pause_began=now, win_reset=end)
    return state


def not_the_probes(state: PacingState, successes: int, latest: float | None) -> PacingState:
    """After counting ``successes``: all for sends admitted before the window's probe
    was granted (``latest`` the last admission), they are W's answers, slow, not the
    probe's: they do not say it got through (one landing after a second probe opened
    a window into the full one)."""
    probing = state.win_sent > state.win_size > 0
    if successes > 0 and latest is not None and probing and latest < state.win_granted - 1e-6:
        return evolve(state, win_probed=state.win_probed + successes)
    return state


def stale_answers(state: PacingState, successes: int, latest: float | None) -> PacingState:
    """After counting ``successes``: all for sends admitted (``latest`` the last) before
    the reset the current window opened at, they are an earlier window's, answered late
    (a process stopped holding them): not this window's W.  (Counted in it, a resumed
    process's answers opened a window past W, 49 sends in a window of 40.)"""
    # The reset the window opened at (opened unseen: the last a 429 told, so the sends
    # it carried count), or its opening once a 429 told the next (a pause's answers).
    opened_at = min(state.win_opened, state.win_reset)
    if successes > 0 and latest is not None and opened_at > latest + 1e-6:
        return evolve(state, win_base=state.win_base + successes)
    return state


def earlier_windows(state: PacingState, sent_at: float | None, cap: float | None) -> bool:
    """In a window's mode, a 429 for a send admitted before the current window could
    have judged it: before the reset it opened at, or, opened unseen (no 429 told that
    reset, ``win_reset`` older), before the window it carried sends from.  An earlier
    window's, answered late (a process stopped holding it): its hint said when that
    window reset, from when it was answered; taken from now, it set a reset of its own
    mid-window, and W went there again (a process stopped 4 s with its probe's 429:
    43-49 sends in a window of 40).  Counted as the arrival spread's are, and as none
    of this window's refusals."""
    hint, opened = state.window_hint, state.win_opened
    earliest = max(min(opened, state.win_reset), opened - hint)
    return in_window_mode(state, cap) and sent_at is not None and earliest > sent_at + 1e-6


def stretch_answers(
    state: PacingState, successes: int, at: float | None, earliest: float | None = None
) -> PacingState:
    """After counting ``successes`` admitted by ``at`` (their latest admission, or the
    report's time), the earliest at ``earliest`` (None: ``at``): the window's first and
    last admissions of a success, a probe's and an earlier window's left out, so that the
    next W goes spread over as long.  (Before the first window, slow start's ramp: its
    successes come in few reports, the first a 429's, so their latest alone made the
    ramp's stretch 0.)"""
    opened_at = min(state.win_opened, state.win_reset)
    probing = (
        state.win_sent > state.win_size > 0 and at is not None and at >= state.win_granted - 1e-6
    )
    if at is None or successes <= 0 or at < opened_at - 1e-6 or probing:
        return state
    first = at if earliest is None or not opened_at - 1e-6 <= earliest <= at else earliest
    return evolve(state, win_first=min(state.win_first, first), win_last=max(state.win_last, at))


def slot_wait(
    state: PacingState,
    now: float,
    sent_at: float | None,
    retry_after: float | None,
    cap: float | None,
) -> bool:
    """In a window's mode, a 429 for one of the window's W sends (admitted at or after
    its reset, not its probe) whose exact hint claims an instant inside the window and
    shorter than half its hint: the wait for a slot, not for the next reset.  A fixed
    window refuses none of W at its reset (a later refusal names its next reset, at
    least the hint away); a sliding window frees each slot a window after the send
    that took it, so W sent at once after slow start's ramp meets the ramp's slots
    freeing one by one, and each refusal names the next.  Taken for a bucket's hint, the
    mode was left and the curve cut to the few admitted (seed 7224 of the 2 s family:
    3.00x).  Not once the claim before it is proved false: the send went at or after
    the slot the last one named (``win_claim``) and no success of the window was
    admitted since (a server naming slots that never free would keep the mode, each
    share given back refused again).  Admitted after it: by two of this 429's round
    trips, so that a success admitted at the slot has answered."""
    hint, opened = state.window_hint, state.win_opened
    if not in_window_mode(state, cap) or retry_after is None or sent_at is None:
        return False
    if not (retry_after > 0 and is_exact(retry_after) and 2 * retry_after < hint):
        return False
    probe = state.win_sent > state.win_size > 0 and sent_at >= state.win_granted - 1e-6
    if probe or not opened - 1e-6 <= sent_at or now + retry_after >= opened + hint:
        return False
    if not (state.win_ramp > 0 or state.win_stretch > 0):
        return False  # no shape to free the slots in: the mode is left as before
    stretch = _slot_shape(state)
    if retry_after > 2 * stretch + max(now - sent_at, 0.0):
        # A slot named beyond the shape (twice its stretch, this 429's round trip for
        # jitter): W would free in it, and the given-back shares went all at once at
        # each slot named (adv9: claims proved false squeezed a ramp to 1 ms, then true
        # ones drew ~300 requests a window for 30 per 5 s).  The mode is left.
        return False
    # (Two round trips past the claim, this 429's: a success admitted at the slot, its
    # answer slower than this one's, is not missed; seed 5350, 17 ms: 1.09x -> 1.27x.)
    late = sent_at - 2 * max(now - sent_at, 0.0)
    return not (late >= state.win_claim and state.win_last < state.win_claim)


def _slot_shape(state: PacingState) -> float:
    """The stretch a sliding window frees its W in: the last whole window's, else the
    ramp's, at most half the window (as ``_open`` caps it); 0: none known."""
    shape = state.win_stretch if state.win_stretch > 0 else state.win_ramp
    return min(shape, state.window_hint / 2)


def slot_waited(state: PacingState, now: float, retry_after: float) -> PacingState:
    """For a 429 that is a ``slot_wait``: the window is a sliding one.  Its length is
    at least the first window's span (its reset minus the ramp's first success: the
    oldest slot's life; the wall's exact hint, from a later send, is shorter, and a
    window ending at it opened the next W into slots still held); its W goes spread
    over the ramp's stretch from the reset, if none was learned (``_spread``); the
    refused send's share is given back, to go again at its place in the spread (its
    429 is none of the window's refusals, as an earlier window's is not).  No pause:
    the refused request waits for its slot itself (an exact hint), and a pause drops
    the grants other requests hold (their answers then missing, the window's probe
    waited ``ANSWER_WAIT``).  But the spread runs behind (``win_behind``) so that the
    share given back is due a slot after the one the hint names, and the rest after
    it: due at once (its place in the spread past), every share given back went at
    each slot's exit and was refused again, hundreds a window at a 17 ms round trip
    (seed 5350 of the 2 s family: 15% -> 113% 429s)."""
    hint = state.window_hint
    stretch = _slot_shape(state)
    sent = max(state.win_sent - 1, 0)
    behind = state.win_behind
    if state.win_size > 0 and stretch > 0:
        slot = stretch / state.win_size
        due = state.win_opened + behind + slot * sent
        behind += max(now + retry_after + slot - due, 0.0)
    return evolve(
        state,
        window_hint=max(hint, min(state.win_span, 2 * hint)),
        win_stretch=stretch,
        win_sent=sent,
        win_throttles=state.win_throttles + 1,
        win_behind=behind,
        win_claim=now + retry_after,
    )


def _spread(state: PacingState, at: float, count: int, tuning: PacingTuning) -> tuple[float, int]:
    """W's next sends spread over the last window's stretch from the reset: (when, n),
    the k-th of W at ``win_opened + win_stretch * k / W``, none before its time; n 0:
    the next is more than a horizon past ``at`` (ask again by then)."""
    size, sent = state.win_size, state.win_sent
    # At most as ``_open`` caps it: a hash no pacer wrote (inf) held W past its window.
    stretch = min(state.win_stretch, state.window_hint / 2)
    # (Opened more than a horizon ahead: the clock went back. At once, as unspread.)
    if not stretch > 0 or not -math.inf < state.win_opened <= at + tuning.horizon:
        return at, min(max(count, 1), size - sent)
    # (``win_behind``: a slot-wait 429's shift, at most the window: past it, W's rest
    # goes into the next, which opens without it; a negative one, corrupt: none.)
    start = state.win_opened + min(max(state.win_behind, 0.0), state.window_hint)
    due = start + stretch * sent / size
    if due > at + tuning.horizon:
        return due, 0
    at = max(at, due)
    # (At most W: a stretch of 5e-324 s made it inf, and ``floor`` raised.)
    passed = min((at - start) * size / stretch, size)
    last = min(size - 1, math.floor(passed + 1e-9))
    return at, min(max(count, 1), max(last - sent + 1, 1))


def _last_reset(reset: float, hint: float, at: float) -> float:
    """The latest reset at or before ``at`` of a window of ``hint`` seconds that reset
    at ``reset`` (``at`` itself for a hint too short to count in: a corrupt state)."""
    periods = (at - reset) / hint
    return reset + math.floor(periods) * hint if periods < 1e15 else at


def _open(state: PacingState, at: float) -> PacingState:
    # W: what the last window accepted, or its grants not refused if more, up to its
    # allowance.  An answer lost with a process that died or froze holding its share
    # was most likely a success: counted by successes alone, W shrank to the share
    # still answering.  (A grant dropped unsent, its slot cleared by a pause, is one
    # too: uncapped, W grew by those and the next window refused them.)
    kept = min(state.win_sent - (state.throttles - state.win_throttles), state.win_size)
    accepted = max(state.successes - state.win_base, kept)
    stretch = state.win_stretch
    refused = state.throttles - state.win_throttles > max(state.win_sent - state.win_size, 0)
    if refused and state.win_last > state.win_first and state.win_opened > -math.inf:
        # W's own sends were refused: the window freed its slots over this stretch.
        stretch = state.win_last - state.win_first
    ramp, span = state.win_ramp, state.win_span
    if state.win_opened == -math.inf and at > state.win_last > state.win_first:
        ramp = min(state.win_last - state.win_first, state.window_hint / 2)  # slow start's
        span = at - state.win_first
    return evolve(
        state,
        win_size=accepted if accepted > 0 else state.win_size,
        win_opened=at,
        win_base=state.successes,
        win_throttles=state.throttles,
        win_sent=0,
        win_first=math.inf,
        win_last=-math.inf,
        win_stretch=min(stretch, state.window_hint / 2),
        win_ramp=ramp,
        win_span=span,
        win_behind=0.0,
        win_claim=-math.inf,
    )


def _unanswered(state: PacingState) -> int:
    """The window's sends no answer has come for yet (negative: more answers than
    sends, a window opened while some were out)."""
    accepted = state.successes - state.win_base
    return state.win_sent - (accepted + state.throttles - state.win_throttles)


def _reset_unseen(state: PacingState, at: float) -> PacingState:
    """The window outlived its hint and no 429 said when the next reset is: it reset
    unseen at ``at``.  W as it was (what the last window accepted is not known), and
    its sends still unanswered are the new window's (sent late in the last, they may
    land in this one: granted again, 16-24 in a window of 40 went over it), if it
    granted any: those of a window that granted none were all carried into it, sent a
    window or more before this one, and their 429s count in no later window
    (``earlier_windows``).  Carried again, they stayed unanswered for good: every
    window opened full and waited for them, one probe per ``ANSWER_WAIT`` (seed 151 of
    the 2 s family, a window of 20 ms at 115 ms: one send a second for 2,000 s)."""
    missing = 0 if state.win_granted < state.win_opened else _unanswered(state)
    return evolve(_open(state, at), win_size=state.win_size, win_sent=max(missing, 0))


def reserve_window(
    state: PacingState, now: float, count: int, tuning: PacingTuning
) -> tuple[PacingState, float, int]:
    """Up to ``count`` sends of the window's allowance: (state, when they go, n); n 0:
    ask again by then (a pause, or a probe waiting for answers)."""
    at = max(now, state.pause_until)
    if at > now + tuning.horizon:
        return state, at, 0
    hint = state.window_hint
    if state.win_opened < state.win_reset <= at:
        # (A reset long past: the window it opened is over too, its W not all sent.)
        reset = _last_reset(state.win_reset, hint, at)
        state = evolve(_open(state, reset), win_reset=reset)
    elif state.win_size and -math.inf < state.win_opened <= at - hint:
        state = _reset_unseen(state, _last_reset(state.win_opened, hint, at))
    size = state.win_size
    if size and state.win_sent > size and state.successes > state.win_probed:
        # The probe got through: the window has room past W (it grew, or reset unseen
        # while the probe waited, or answers were lost).  The allowance doubles, its
        # probes in it, in the same window, so the next W counts it all (opened anew
        # here, W stayed the old one: two bursts a window; as many again as accepted,
        # a window that reset unseen got the probes and a whole W more).
        size = 2 * size
        state = evolve(state, win_size=size)
    if not size:
        n = max(count, 1)
    elif state.win_sent < size:
        at, n = _spread(state, at, count, tuning)
        if not n:
            return state, at, 0
    else:
        missing = _unanswered(state)
        # (A grant stamped ahead of now, from a clock that went back, is stale.)
        waited = now - state.win_granted
        if missing > 0 and 0 <= waited < ANSWER_WAIT:
            return state, now + 2 * tuning.horizon, 0  # ask again within a horizon
        missing = max(missing, 0)
        if state.win_sent == size:
            # Answers still missing at the first probe may yet come as successes: only
            # more than those say it got through (a slow answer once opened a window
            # into a full one).
            state = evolve(state, win_probed=state.successes + missing)
        else:
            # Still missing ``ANSWER_WAIT`` after the first probe went, they are lost:
            # written off, their share of W goes again.  (Counted missing at every
            # probe, an accepted probe never reopened the window; taken as granted,
            # each probe's success doubled the allowance into windows that had reset
            # unseen meanwhile.)
            state = evolve(state, win_sent=state.win_sent - missing, win_probed=state.successes)
        n = min(max(count, 1), size - state.win_sent) if state.win_sent < size else 1
    return evolve(state, win_sent=state.win_sent + n, win_granted=now), at, n
