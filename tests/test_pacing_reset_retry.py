"""A bulk send's 429 with a window's rounded hint (whole seconds): whose wait it is
(``Pacer.paces_reset``, ``RetryPolicy.compute_wait(reset_paced=...)``).

A hint of ``LONG_HINT`` or more, or of 2 once a window opened, is the pacer's: the
refused requests go when its pause ends (the earliest bound of the wall's hints), not
each at its own hint plus jitter.  A hint of 2 at a short window's first wall stays the
request's: released together there, a sliding window freeing its slots one by one
refused most of them."""

from __future__ import annotations

import pytest

from opentrain_async import RetryPolicy
from opentrain_async._pacing.allowance import LONG_HINT
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async._pacing.pacer import Pacer
from opentrain_async._pacing.state import PacingState, PacingTuning
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client
from .pacing_kit import known_window, paced, probe_after_w
from .step_clock import Clock
from .test_bulk import collect
from .test_retry_policy import rate_limited

W, WINDOW = 10, 1.3


def _first_wall(clock: Clock) -> tuple[InMemoryPacingBackend, Pacer]:
    """A pacer in a 2 s window's mode at its first wall: no window opened yet."""
    state = known_window(W, WINDOW, clock.now + WINDOW, window_hint=2.0)
    backend = InMemoryPacingBackend(clock=clock, state=state)
    return backend, paced(clock, backend)


def test_a_short_windows_first_wall_keeps_its_own_hints() -> None:
    """No window opened yet: a hint of 2 is the request's to wait (the pacer would
    release the whole wall at once); one of ``LONG_HINT`` or more is the pacer's, up to
    the longest pause it takes for a hint."""
    clock = Clock()
    backend, pacer = _first_wall(clock)
    assert backend.state.win_opened == -float("inf")
    assert not pacer.paces_reset(2.0)
    assert pacer.paces_reset(LONG_HINT)
    assert pacer.paces_reset(30.0)
    longest = PacingTuning().max_hint_pause
    assert not pacer.paces_reset(longest + 1)


async def test_once_a_window_opened_its_hints_are_the_pacers() -> None:
    """A window opened at its reset hands out W spread over its stretch: a later
    wall's hint of 2 is the pacer's to wait."""
    clock = Clock()
    start = clock.now
    backend, pacer = _first_wall(clock)
    clock.now = start + WINDOW
    await probe_after_w(clock, pacer, W, start + 1.45)
    assert backend.state.win_opened == start + WINDOW
    assert pacer.paces_reset(2.0)


def test_not_in_a_windows_mode_a_short_hint_is_the_requests() -> None:
    """A pacer that has not taken a window's mode (no hint of one yet) leaves a hint of
    2 to the request, and takes one of ``LONG_HINT``."""
    clock = Clock()
    pacer = paced(clock, InMemoryPacingBackend(clock=clock, state=PacingState()))
    assert not pacer.paces_reset(2.0)
    assert pacer.paces_reset(LONG_HINT)


async def test_a_long_rounded_hint_is_retried_when_the_pause_ends() -> None:
    """A bulk input refused with a whole hint of 3 s goes again when the pacer's pause
    for it ends, 3 s on, not at 3 s plus the retry's jitter (up to 10%: 3.3 s here)."""
    time = FakeTime()
    policy = RetryPolicy(random=lambda: 1.0, sleep=time.sleep)
    async with FakeOpenTrain(clock=time.clock) as server:
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=3)
        async with make_client(
            server, clock=time.clock, sleep=time.sleep, retry_policy=policy
        ) as client:
            outcomes = await collect(client, [(conv, "only")], concurrency=1)
        assert [o.ok for o in outcomes] == [True]
        first, retry = (s.received_at for s in server.sends)
    assert retry - first == pytest.approx(3.0, abs=0.05)


def test_compute_wait_leaves_a_rounded_hint_only_when_told() -> None:
    """``reset_paced``: the pacer waits a whole hint it said it waits; never an exact
    one, never outside a bulk send."""
    policy = RetryPolicy(random=lambda: 0.0)
    error = rate_limited
    assert policy.compute_wait(error(3), 1, paced=True) == 3.0
    assert policy.compute_wait(error(3), 1, paced=True, reset_paced=True) == 0.0
    assert policy.compute_wait(error(3.5), 1, paced=True, reset_paced=True) == 3.5
    assert policy.compute_wait(error(3), 1, reset_paced=True) == 3.0
