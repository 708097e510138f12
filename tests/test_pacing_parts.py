"""The pacer's parts as pure functions of (state, now): no event loop, no clock.

These are the functions a shared backend (Redis, in Lua) mirrors, so each promise is
pinned here on plain values.
"""

from __future__ import annotations

import random

import attrs
import pytest

from opentrain_async import InMemoryPacingBackend, PacingBackend, PacingFeedback, PacingState
from opentrain_async import PacingTuning as Tuning
from opentrain_async._pacing import apply_report, apply_reserve, current_rate
from opentrain_async._pacing.curve import MIN_RATE, cut, first_cut, freeze, rate
from opentrain_async._pacing.pause import learn_window, on_hint
from opentrain_async._pacing.samples import accepted_rate, record
from opentrain_async._pacing.schedule import reserve_slots, restart_if_idle
from opentrain_async._pacing.state import SAMPLE_BUCKETS, evolve

T = Tuning()


def paced(limit: float, origin: float = 0.0, **fields: object) -> PacingState:
    """A state past its first real cut: cubic around ``limit`` from ``origin``."""
    return attrs.evolve(
        PacingState(), limit=limit, searching=False, origin=origin, cut_at=origin, **fields
    )


# -- curve ------------------------------------------------------------------------------


def test_no_rate_before_the_first_429() -> None:
    """Unpaced until the server has said something."""
    assert rate(PacingState(), 5.0, T) is None
    assert current_rate(PacingState(), 5.0, T, cap=100.0) == 100.0


def test_search_doubles_per_period_and_stays_finite() -> None:
    """After the first 429 the rate doubles every ``doubling`` seconds, bounded."""
    state = first_cut(PacingState(), 1.0, local_rate=50.0, resume=1.0)
    assert rate(state, 1.0, T) == pytest.approx(50.0)
    assert rate(state, 1.2, T) == pytest.approx(200.0)
    far = rate(state, 1e6, T)
    assert far is not None
    assert far < float("inf")


def test_first_estimate_never_below_the_floor() -> None:
    """A first 429 before anything got through still paces at MIN_RATE, not zero."""
    assert first_cut(PacingState(), 0.0, local_rate=0.0, resume=0.0).limit == MIN_RATE
    assert first_cut(PacingState(), 0.0, local_rate=None, resume=0.0).limit == MIN_RATE


def test_cubic_climbs_back_then_probes_then_searches_again() -> None:
    """beta * limit right after the cut, the limit after ``recover``, above it after, and
    past twice ``recover`` it doubles (a raised limit is found fast)."""
    state = paced(100.0)
    r0, r1, r2 = rate(state, 0.0, T), rate(state, T.recover, T), rate(state, 2 * T.recover, T)
    assert r0 == pytest.approx(T.beta * 100)
    assert r1 == pytest.approx(100)
    assert r2 == pytest.approx((2 - T.beta) * 100)
    later = rate(state, 2 * T.recover + 2 * T.doubling, T)
    assert later == pytest.approx(4 * (2 - T.beta) * 100)


def test_cut_takes_the_accepted_rate_only_as_evidence() -> None:
    """The cut remembers min(drawing rate, accepted rate); with no evidence (None) the
    drawing rate itself; and one episode never cuts below half the drawing rate (a
    stalled sender's trickle is not the limit: a real drop shows again at once)."""
    state = paced(100.0)  # 0.2 s later the curve is still climbing back
    assert cut(state, 0.2, 120.0, 90.0, None, 0.2, T).limit == pytest.approx(90.0)
    assert cut(state, 0.2, 120.0, None, None, 0.2, T).limit == pytest.approx(120.0)
    assert cut(state, 0.2, 120.0, 0.0, None, 0.2, T).limit == pytest.approx(60.0)
    assert cut(state, 0.2, 0.6, 0.0, None, 0.2, T).limit == MIN_RATE


def test_a_searching_cut_lands_between_the_last_two_doublings() -> None:
    """While doubling, the rate one doubling ago drew no 429 and the drawing rate did:
    the limit lies between, and the cut takes their geometric middle unless the server
    accepted more (the accepted rate averages the climb, so it lags behind)."""
    state = first_cut(PacingState(), 0.0, 100.0, 0.0)
    middle = cut(state, 0.3, 800.0, 150.0, None, 0.3, T).limit
    assert middle is not None
    assert 400.0 < middle < 800.0
    assert middle == pytest.approx((400.0 * 800.0) ** 0.5, rel=0.01)
    assert cut(state, 0.3, 800.0, 700.0, None, 0.3, T).limit == pytest.approx(700.0)


def test_the_rate_that_drew_a_429_is_the_one_its_request_was_admitted_at() -> None:
    """With a round trip of latency the 429 arrives while the search has doubled on: the
    cut starts from the rate at admission, not the rate when the answer came back."""
    state = first_cut(PacingState(successes=10), 0.0, 100.0, 0.0)
    state = attrs.evolve(state, successes=50)  # successes since the first cut
    feedback = PacingFeedback(throttled=True, throttled_at=0.30, retry_after=0.001)
    late = apply_report(state, 0.40, feedback, None, T)  # answered 100 ms later
    at_admission = rate(state, 0.30, T)
    assert at_admission is not None
    assert late.limit is not None
    assert late.limit <= at_admission
    assert late.limit < rate(state, 0.40, T) / 2**0.5  # type: ignore[operator]


def test_long_hints_slow_the_climb_back() -> None:
    """A probe's 429 costs its request the hint: with a 1 s hint the curve takes 1.5 s
    to get back to the limit, with a window's hint three times the window."""
    one = cut(paced(100.0), 0.0, 100.0, None, 1.0, 0.0, T)
    assert one.recover == pytest.approx(1.5)
    window = cut(paced(10.0, window_hint=60.0), 0.0, 10.0, None, 1.0, 0.0, T)
    assert window.recover == pytest.approx(180.0)


def test_long_round_trips_slow_the_climb_back() -> None:
    """A 429 heard 40 ms after its request was admitted: every probe above the limit
    draws 429s for a round trip before it is heard of, so the curve takes twenty round
    trips (0.8 s) to climb back rather than 0.3 s; on loopback nothing changes."""
    far = cut(paced(500.0), 1.0, 550.0, 500.0, 0.001, 1.0, T, delay=0.04)
    near = cut(paced(500.0), 1.0, 550.0, 500.0, 0.001, 1.0, T, delay=0.001)
    assert far.recover == pytest.approx(0.8)
    assert near.recover == pytest.approx(T.recover)
    state = attrs.evolve(paced(500.0), successes=100, tat=0.9)
    # (a hint of 0.1 ms: a bucket's bound, 10,000/s, above any rate here)
    heard_late = apply_report(state, 1.0, throttle(0.96, 0.0001, 5), None, T)
    assert heard_late.cuts == state.cuts + 1
    assert heard_late.recover == pytest.approx(0.8)


def test_freeze_moves_the_curve_by_the_stalled_time_only() -> None:
    """Idle or paused time after the origin does not move the curve; before it, nothing."""
    state = paced(100.0, origin=10.0)
    assert freeze(state, 12.0, 13.5).origin == pytest.approx(11.5)
    assert freeze(state, 8.0, 9.0).origin == pytest.approx(10.0)
    assert freeze(state, 9.0, 11.0).origin == pytest.approx(11.0)
    assert freeze(PacingState(), 0.0, 5.0) == PacingState()


# -- samples ----------------------------------------------------------------------------


def test_accepted_rate_counts_recent_buckets_only() -> None:
    """Successes and offered slots per 0.1 s; older than the span, or than a second, drop."""
    state = PacingState()
    for i in range(10):  # 10 per 0.1 s for one second: 100/s
        state = record(state, 0.05 + i * 0.1, accepted=10, offered=12)
    accepted, offered = accepted_rate(state, 1.0, 0.25)
    assert accepted == pytest.approx(100.0, rel=0.2)
    assert offered == pytest.approx(120.0, rel=0.2)
    assert accepted_rate(state, 3.0, 1.0) == (0.0, 0.0)  # all of it more than 1 s old


def test_accepted_rate_ignores_time_before_the_origin() -> None:
    """A pause (the curve's origin) does not dilute the rate measured after it."""
    state = attrs.evolve(PacingState(), origin=0.8)
    state = record(state, 0.85, accepted=10)
    accepted, _ = accepted_rate(state, 0.9, 1.0)
    assert accepted >= 10 / 0.2


# -- pause ------------------------------------------------------------------------------


def test_exact_hint_pauses_everyone_for_all_of_it() -> None:
    """A fractional hint is exact: the pause lasts it, capped by max_hint_pause."""
    assert on_hint(PacingState(), 5.0, 5.0, 0.25, T).pause_until == pytest.approx(5.25)
    assert on_hint(PacingState(), 0.0, 0.0, 1e6 + 0.5, T).pause_until == T.max_hint_pause


def test_one_second_hints_pause_briefly_doubling_back_to_back() -> None:
    """A 1 s hint may be a rounded millisecond: a short pause, doubled per 429 in a row,
    but not for 429s of the same burst (admitted before the pause began)."""
    state = PacingState()
    ends = []
    now = 0.0
    for _ in range(3):
        state = on_hint(state, now, now, 1.0, T)
        ends.append(round(state.pause_until - now, 6))
        now = state.pause_until
    assert ends == [0.05, 0.1, 0.2]
    same_burst = on_hint(state, now, state.pause_began - 0.01, 1.0, T)
    assert same_burst.streak == state.streak


def test_a_window_hint_pauses_until_the_window_resets() -> None:
    """A whole hint of 2 s or more is a full window: nobody probes into it."""
    state = on_hint(PacingState(), 3.0, 3.0, 7.0, T)
    assert state.pause_until == pytest.approx(10.0)


def test_window_hints_are_learned_and_forgotten_on_an_exact_one() -> None:
    """The longest whole hint of 2 s or more marks a window; a fractional one clears it."""
    state = learn_window(PacingState(), 1.0)
    assert state.window_hint == 0
    state = learn_window(learn_window(state, 60.0), 3.0)
    assert state.window_hint == 60.0
    assert learn_window(state, 0.5).window_hint == 0


# -- schedule ---------------------------------------------------------------------------


def test_reservation_covers_the_slots_due_within_the_horizon() -> None:
    """At 1,000/s a 20 ms horizon reserves 20 slots in one call; at 10/s just one."""
    ready = attrs.evolve(PacingState(), tat=1.0)
    fast, first, n = reserve_slots(ready, 1.0, 0.001, 64, T)
    assert (first, n) == (1.0, 21)
    assert fast.tat == pytest.approx(1.021)
    _, _, n = reserve_slots(ready, 1.0, 0.1, 64, T)
    assert n == 1


def test_late_slots_are_still_due_so_the_schedule_holds() -> None:
    """A timer 5 ms late at 1,000/s: the 5 missed slots are due now, not lost."""
    state = attrs.evolve(paced(1000.0), tat=1.0)
    _, first, n = reserve_slots(state, 1.005, 0.001, 8, T)
    assert first == 1.0
    assert n == 8


def test_after_idling_the_schedule_restarts_now_and_the_curve_froze() -> None:
    """No burst after idling, and the idle time does not count as probing time."""
    state = attrs.evolve(paced(100.0, origin=0.0), tat=0.5)
    after = restart_if_idle(state, 3.0, T)
    assert after.tat == 3.0
    assert after.origin == pytest.approx(2.5)
    _, first, n = reserve_slots(after, 3.0, 0.01, 64, T)
    assert (first, n) == (3.0, 3)
    busy = attrs.evolve(state, tat=2.995)  # 5 ms behind: late, not idle
    assert restart_if_idle(busy, 3.0, T) == busy


def test_no_slot_inside_a_pause() -> None:
    """Slots start at the end of the pause; none is held while it is further away than
    the horizon (ask again by then, at the rate of then)."""
    state = attrs.evolve(paced(100.0), pause_until=2.0, tat=1.0)
    held, first, n = reserve_slots(state, 1.0, 0.01, 4, T)
    assert (first, n) == (2.0, 0)
    assert held == state
    _, first, n = reserve_slots(state, 2.0 - T.horizon, 0.01, 4, T)
    assert (first, n) == (2.0, 1)


def test_processes_queue_no_slots_ahead_while_the_search_doubles() -> None:
    """Eight processes ask at once at the search's first 10/s: one gets the slot, the
    others hold none, so half a second later the next slots come at the doubled rate
    (slots held one interval apart each pushed the schedule 0.8 s out at 10/s while the
    search climbed to 10,000/s untested, then everyone burst)."""
    state = attrs.evolve(PacingState(), limit=10.0, searching=True, origin=0.0, tat=0.0)
    counts = []
    for _ in range(8):
        state, reservation = apply_reserve(state, 0.0, 16, 0, None, T)
        counts.append(reservation.count)
    assert counts == [1, 0, 0, 0, 0, 0, 0, 0]
    assert state.tat == pytest.approx(0.1)
    state, reservation = apply_reserve(state, 0.1, 16, 1, None, T)
    assert reservation.first == pytest.approx(0.1)
    assert reservation.interval == pytest.approx(1 / 20)  # one doubling later


# -- the backend's two operations -------------------------------------------------------


def throttle(at: float, hint: float | None, successes: int = 0, **kw: object) -> PacingFeedback:
    return PacingFeedback(
        successes=successes, throttled=True, throttled_at=at, retry_after=hint, **kw
    )


def test_an_exact_hint_many_slots_long_is_a_window() -> None:
    """A fixed window's exact hint says when it resets, many slots away at the pace that
    drew it; a bucket's says when its next token comes, about one slot away."""
    assert learn_window(PacingState(), 0.7, rate=1000.0).window_hint == 0.7
    assert learn_window(PacingState(), 0.002, rate=1000.0).window_hint == 0.0
    assert learn_window(PacingState(), 0.7).window_hint == 0.0  # no pace known: not one
    learned = learn_window(PacingState(), 0.9, rate=500.0)
    assert learn_window(learned, 0.4, rate=500.0).window_hint == 0.9  # the longest seen
    assert learn_window(learned, 0.001, rate=500.0).window_hint == 0.0  # a bucket after all


def test_a_window_with_exact_hints_is_paced_at_its_average_not_burst_into() -> None:
    """100 per 1 s with exact hints: the search bursts into the second window; its 429
    cuts to the window's reset-to-reset average, so the pace no longer bursts into each
    new window and draws a 429 from everything in flight when it fills."""
    state = apply_report(
        PacingState(), 0.01, throttle(0.009, 0.99, 100, local_rate=1000.0), None, T
    )
    assert state.window_hint == pytest.approx(0.99)
    assert state.pause_until == pytest.approx(1.0)
    state = apply_report(state, 1.06, throttle(1.05, 0.94, 100), None, T)
    assert state.limit == pytest.approx(100 / (2.0 - 1.0), rel=0.01)
    assert state.pause_until == pytest.approx(2.0)
    rate_after = current_rate(state, 2.0, T)
    assert rate_after is not None
    assert rate_after <= 100


def test_one_cut_per_episode() -> None:
    """A 429 for a request admitted before the last cut, or with no success since it,
    does not cut again; the next episode does."""
    state = apply_report(PacingState(), 1.0, throttle(0.99, 0.01, 50, local_rate=50.0), None, T)
    assert state.cuts == 1
    state = apply_report(state, 1.5, throttle(1.4, 0.01, 40), None, T)
    assert state.cuts == 2
    stale = apply_report(state, 1.51, throttle(1.45, 0.01), None, T)
    assert stale.cuts == 2  # admitted before the cut
    no_success = apply_report(state, 1.6, throttle(1.55, 0.01), None, T)
    assert no_success.cuts == 2  # nothing accepted since the cut
    assert no_success.throttles == state.throttles + 1
    later = apply_report(state, 1.7, throttle(1.65, 0.01, 10), None, T)
    assert later.cuts == 3


def test_slots_handed_out_before_a_cut_are_its_episode() -> None:
    """Other processes hold slots reserved at the old rate (up to ``tat``) and learn of
    the cut only at their next call: 429s for those slots, though admitted after the
    cut's short pause, do not cut again (eight processes cut 4-5 times per episode,
    down to 0.6x the limit, before this)."""
    state = paced(300.0, origin=0.0, successes=500, successes_at_cut=0, tat=1.02)
    cut_once = apply_report(state, 1.0, throttle(0.999, 0.001, 10), None, T)
    assert cut_once.cuts == state.cuts + 1
    assert cut_once.cut_at == 1.02  # past the pause (1.001): the last slot handed out
    held = apply_report(cut_once, 1.015, throttle(1.01, 0.001, 10), None, T)
    assert held.cuts == cut_once.cuts
    assert held.limit == cut_once.limit
    fresh = apply_report(held, 1.05, throttle(1.03, 0.001, 10), None, T)
    assert fresh.cuts == cut_once.cuts + 1  # a slot reserved at the new rate


def test_a_pause_without_a_cut_freezes_the_curve() -> None:
    """A stale 429's pause does not count as climbing time."""
    state = paced(100.0, origin=1.0, successes=5, successes_at_cut=5)
    after = apply_report(state, 1.2, throttle(0.5, 0.3), None, T)
    assert after.cuts == state.cuts
    assert after.origin == pytest.approx(1.3)


def test_an_idle_sender_keeps_what_it_learned() -> None:
    """A consumer that paused (or a stalled loop) offered nothing for a while; the 429
    after it cuts from the drawing rate, not to the trickle that got through."""
    state = paced(1000.0, origin=0.0, successes=100, tat=0.0)
    state = apply_report(state, 2.0, PacingFeedback(successes=3), None, T)  # a trickle
    state, _ = apply_reserve(state, 2.0, 1, 0, None, T)
    after = apply_report(state, 2.01, throttle(2.005, 0.001, 1), None, T)
    assert after.limit is not None
    assert after.limit >= 0.9 * 1000


def test_a_window_is_measured_from_reset_to_reset() -> None:
    """Bursting into a 30-per-3 s window: the cut learns 10/s, however bunched."""
    tuning = T
    state = apply_report(
        PacingState(), 0.01, throttle(0.005, 3.0, 30, local_rate=300.0), None, tuning
    )
    assert state.pause_until == pytest.approx(3.01)
    assert state.window_hint == 3.0
    # After the reset: 30 more in a burst, then the window is full again.
    state = apply_report(state, 3.1, throttle(3.09, 3.0, 30), None, tuning)
    assert state.limit == pytest.approx(30 / (6.1 - 3.01), rel=0.01)
    assert state.pause_until == pytest.approx(6.1)


def test_reserve_counts_successes_and_reports_the_episode() -> None:
    """Successes ride along with a reservation; the reservation names its episode."""
    state = first_cut(PacingState(), 0.0, 100.0, 0.0)
    state, reservation = apply_reserve(state, 0.0, 4, 7, None, T)
    assert state.successes == 7
    assert reservation.rate == pytest.approx(100.0)
    assert reservation.interval == pytest.approx(0.01)
    assert reservation.count == 3  # slots due within the 20 ms horizon
    assert reservation.cuts == state.cuts == 1


def _random_state(rng: random.Random) -> PacingState:
    origin = rng.uniform(0.0, 10.0)
    return attrs.evolve(
        PacingState(),
        limit=rng.choice([None, rng.uniform(0.5, 5000.0)]),
        searching=rng.random() < 0.3,
        origin=origin,
        recover=rng.choice([0.0, rng.uniform(0.1, 5.0)]),
        successes=rng.randrange(1000),
        streak=rng.randrange(4),
        pause_until=rng.choice([0.0, rng.uniform(5.0, 12.0)]),
        tat=rng.choice([float("-inf"), rng.uniform(5.0, 12.0)]),
        sample_at=round(rng.uniform(5.0, 10.0), 1),
        accepted=tuple(rng.randrange(50) for _ in range(SAMPLE_BUCKETS)),
        offered=tuple(rng.randrange(50) for _ in range(SAMPLE_BUCKETS)),
    )


def test_a_reservation_is_the_composition_of_the_parts() -> None:
    """``apply_reserve`` copies the state once per call for speed; it must still equal
    the parts applied one by one (count successes, restart, rate, reserve), which the
    Redis script mirrors."""
    rng = random.Random(12)
    for _ in range(500):
        state = _random_state(rng)
        now = rng.uniform(5.0, 12.0)
        count, successes = rng.randrange(1, 64), rng.choice([0, rng.randrange(1, 30)])
        cap = rng.choice([None, rng.uniform(1.0, 3000.0)])
        step = state
        if successes:
            step = record(step, now, accepted=successes)
            step = attrs.evolve(step, successes=step.successes + successes, streak=0)
        step = restart_if_idle(step, now, T)
        rate_now = current_rate(step, now, T, cap)
        interval = 0.0 if rate_now is None else 1.0 / rate_now
        strict = cap is not None and rate_now == cap
        step, first, n = reserve_slots(step, now, interval, count, T, strict)
        got, reservation = apply_reserve(state, now, count, successes, cap, T)
        assert got == step
        assert (reservation.first, reservation.count, reservation.rate) == (first, n, rate_now)


def test_the_fast_copy_is_attrs_evolve() -> None:
    """``state.evolve`` (the hot path's copy) gives what ``attrs.evolve`` gives, and
    refuses a field the state does not have."""
    state = _random_state(random.Random(3))
    assert evolve(state, tat=1.0, origin=2.0) == attrs.evolve(state, tat=1.0, origin=2.0)
    assert hash(evolve(state, cuts=4)) == hash(attrs.evolve(state, cuts=4))
    with pytest.raises(TypeError, match="no field 'speed'"):
        evolve(state, speed=1.0)


def test_unpaced_reservation_hands_out_every_slot_at_the_end_of_a_pause() -> None:
    """Before any limit is known a reservation is just 'wait out the pause'."""
    state = attrs.evolve(PacingState(), pause_until=2.0)
    _, reservation = apply_reserve(state, 1.0, 5, 0, None, T)
    assert reservation.rate is None
    assert (reservation.first, reservation.interval, reservation.count) == (2.0, 0.0, 5)


async def test_the_in_memory_backend_implements_the_protocol() -> None:
    """InMemoryPacingBackend is a PacingBackend; its calls are the pure functions."""
    now = [10.0]
    backend: PacingBackend = InMemoryPacingBackend(clock=lambda: now[0])
    state = await backend.report(throttle(10.0, 0.5, 20, local_rate=200.0))
    assert state == await backend.load()
    assert state.pause_until == pytest.approx(10.5)
    now[0] = 11.0
    reservation = await backend.reserve(3, successes=2, cap=50.0)
    assert reservation.now == 11.0
    assert reservation.rate == 50.0  # the stated limit caps the learned rate
    assert (await backend.load()).successes == 22
