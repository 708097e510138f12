"""A window's sends and answers that come late: a holder stopped with its answers, a
window whose W goes late and outlives its hint, a reset long past.

Each window of W per T admits W at its reset, then one probe for everyone until a 429
says when the next reset is (``allowance``).  What a stopped process does to that:
its answers, reported windows later, must not count as the later window's (its W would
grow past the server's), and a window that outlived its hint with no 429 (its W sent
late, straddling the server's reset) must not hand out the rest of its W, nor double
it on its probe's success, into the next one.  In process, on an injected clock,
against the fake server's fixed window, every answer immediate unless held.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import attrs
import pytest

from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend
from opentrain_async.testing import FixedWindow
from opentrain_async.testing._limits import _hint

from .pacing_kit import Shared, known_window, paced
from .step_clock import Clock

W = 20
T = 2.0
START = 100.0  # the clock's start, the server's origin and the known next reset


@attrs.define
class Server:
    """The fake server's fixed window of W per T from ``START``, counting what each of
    its windows saw."""

    limiter: object = attrs.Factory(lambda: FixedWindow(limit=W, window=T)._limiter(START, START))
    sends: Counter[int] = attrs.Factory(Counter)

    def judge(self, now: float) -> float | None:
        """Admit (None) or the exact hint."""
        self.sends[math.floor((now - START) / T)] += 1
        wait = self.limiter.acquire(now)  # type: ignore[attr-defined]
        return None if wait is None else _hint(wait, False)


async def _send(
    clock: Clock,
    pacer: Pacer,
    server: Server,
    n: int,
    hook: Callable[[], None] = lambda: None,
) -> int:
    """Send ``n`` messages through ``pacer``: whatever it admits at once goes out
    together (in flight together, as a burst is), then the answers come (a 429's
    message is sent again); 5 ms pass whenever it admits nothing.  ``hook`` runs
    before each burst."""
    delivered = 0
    while delivered < n:
        assert clock.now < START + 60, "never delivered"
        hook()
        burst: list[tuple[float, float | None]] = []
        while delivered + len(burst) < n and (at := pacer.try_acquire()) is not None:
            burst.append((at, server.judge(clock.now)))
        if not burst:
            clock.now += 0.005
        for at, hint in burst:
            if hint is None:
                pacer.on_success(at)
                delivered += 1
            else:
                await pacer.on_throttle(at, hint)
    return delivered


@pytest.mark.parametrize("wakes_after", [W, W + 1], ids=["W out", "probe refused"])
async def test_answers_held_past_the_reset_do_not_count_in_the_next_window(
    wakes_after: int,
) -> None:
    """A holder takes half of a window's W, sent and accepted, then stops with the
    answers; the other pacer sends on (its probe waits ``ANSWER_WAIT`` for them).  The
    holder wakes in the next window and reports them, while the other's W is out, or
    once its probe was refused (the pause to the reset): they are the first window's
    successes, not this one's.  (Counted in it,
    the allowance doubled on them and the next W was 30: windows of 31 and 30 sends,
    W 20.)"""
    clock = Clock()
    clock.now = START
    backend = InMemoryPacingBackend(clock=clock, state=known_window(W, T, START))
    holder, other = paced(clock, backend), paced(clock, backend)
    server = Server()
    held: list[float] = []
    for _ in range(W // 2):
        at = holder.try_acquire()
        assert at is not None
        assert server.judge(clock.now) is None
        held.append(at)  # accepted, the answer not read: the holder stopped

    def wake() -> None:
        """The holder resumes once the other has sent the second window's W (and its
        probe)."""
        if held and server.sends[1] >= wakes_after:
            for at in held:
                holder.on_success(at)
            held.clear()

    delivered = await _send(clock, other, server, 4 * W, wake)
    assert delivered == 4 * W
    assert not held
    assert backend.state.win_size == W
    seen = [server.sends[i] for i in range(max(server.sends) + 1)]
    assert max(seen) <= W + 1, seen


async def test_a_window_outlives_its_hint_and_its_w_does_not_go_into_the_next() -> None:
    """Half of W goes at the end of a window, the rest is asked for just after the
    server's reset, no 429 having said when it was: the window lasted its hint, so it
    reset unseen, and the new one gets W, not the old one's rest and then, its probe
    accepted, a doubled allowance (30 sends in the next two windows, W 20)."""
    clock = Clock()
    clock.now = START
    backend = InMemoryPacingBackend(clock=clock, state=known_window(W, T, START))
    pacer = paced(clock, backend)
    server = Server()
    clock.now = START + T - 0.1  # nothing to send until the window's end
    assert await _send(clock, pacer, server, W // 2) == W // 2
    clock.now = START + T + 0.05  # the rest comes just after the reset
    assert await _send(clock, pacer, server, 3 * W) == 3 * W
    seen = [server.sends[i] for i in range(max(server.sends) + 1)]
    assert seen[0] == W // 2
    assert max(seen) <= W + 1, seen
    assert backend.state.win_size == W


async def test_a_reset_long_past_opens_the_window_of_now() -> None:
    """The first reservation comes five windows after the reset the state knows (the
    processes started late, the cut a window before them): the window opened is the
    current one, so its hint ends it at the server's next reset, not at once (W then
    its probe, each window)."""
    clock = Clock()
    clock.now = START + 5 * T + 0.3
    cut = clock.now - T
    state = known_window(W, T, START, origin=cut, cut_at=cut)
    backend = InMemoryPacingBackend(clock=clock, state=state)
    pacer = paced(clock, backend)
    server = Server()
    assert await _send(clock, pacer, server, 3 * W) == 3 * W
    assert backend.state.win_reset == START + 7 * T  # told by the 429s, not reckoned
    seen = [server.sends[i] for i in range(5, max(server.sends) + 1)]
    assert seen == [W + 1, W + 1, W], seen


async def test_a_probes_429_pauses_a_process_that_never_saw_the_hint() -> None:
    """A process on a shared state that has sent only its share of W (no 429 yet, so
    no hint seen), round trips that vary by 200 ms: its probe's 429 is the window's,
    not the arrival spread's, and pauses everyone to the reset.  (Taken for jitter, it
    paused nobody and a second probe went: W + 2 in a window.)"""
    clock = Clock()
    clock.now = START
    inner = InMemoryPacingBackend(clock=clock, state=known_window(W, T, START))
    pacer = Pacer(backend=Shared(inner), clock=clock, sleep=clock.sleep)
    for round_trip in (0.1, 0.3) * 8:
        pacer.spread.answered(round_trip, accepted=True)
    server = Server()
    delivered = 0
    while delivered < 2 * W:
        assert clock.now < START + 60, "never delivered"
        at = await pacer.acquire()
        hint = server.judge(clock.now)
        if hint is None:
            pacer.on_success(at)
            delivered += 1
        else:
            await pacer.on_throttle(at, hint)
    assert server.sends[0] == W + 1
    assert inner.state.win_reset == START + T


async def test_a_429_held_past_the_reset_sets_no_reset_of_its_own() -> None:
    """A holder's probe is refused late in the first window (an exact hint of half a
    second) and the holder stops with the answer; the other pacer sends on and ends.
    The holder wakes windows later and reports it: the hint said when that window
    reset, from when the server answered; from now, it set a reset mid-window and W
    went there again, into a server's window that had had its share (on Redis, a
    process stopped in its first window: 43-49 sends in a window of 40)."""
    clock = Clock()
    clock.now = START
    backend = InMemoryPacingBackend(clock=clock, state=known_window(W, T, START))
    holder, other = paced(clock, backend), paced(clock, backend)
    server = Server()
    assert await _send(clock, other, server, W) == W
    clock.now = START + T - 0.5
    probe = holder.try_acquire()
    assert probe is not None
    hint = server.judge(clock.now)
    assert hint is not None  # refused: the holder stops with the answer
    assert await _send(clock, other, server, 3 * W) == 3 * W
    clock.now += 0.3
    await holder.on_throttle(probe, hint)
    assert await _send(clock, holder, server, 2 * W) == 2 * W
    seen = [server.sends[i] for i in range(max(server.sends) + 1)]
    assert max(seen) <= W + 1, seen
