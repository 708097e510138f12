"""A duty-cycled limiter (adversary adv11): up to 40 requests admitted, but only in the
first 20 ms of each second; every other request refused with the wait to the next
second.  The ideal for 600 sends is 15 s (40 a second).  On bf47dc5, 40 senders with
10 ms each way, in virtual time: exact hints 1,256 s and 1,265 429s; a rounded second
(body or ``Retry-After`` header: the pacer is told the same 1.0) 18,933 s and 16,186
429s (205 for one send); no hint 18,858 s and 61,430 429s (705 for one send).

Why (traced; ``benchmarks/pacing-experiments.md``, "A limiter open 20 ms a second"):

* Exact hints: the first 429 (0.97 s at 40/s) opens a window of 0.97 s, but its W is
  the 4 sends the slow start had in the first 20 ms.  W grows only by a send past W that
  the limiter admits, and the pacer sends it a round trip after the reset: always in the
  closed 980 ms, always refused.  W = 4 a second, then the curve's cut to 2/s makes the
  hint under ``WINDOW_SLOTS`` slots at the pace, so ``learn_window`` forgets the window:
  a rate of 1.8/s, whose sends land in the open 20 ms only after a pause ends at the
  second: one send in two seconds.
* A rounded second or none: the short pause and the wall probe.  The probe goes every
  1 s pause + 20 ms round trip, so its phase walks 20 ms a second through the cycle and
  lands in the open 20 ms about once in 50 probes (~20 s); the lift then paces its
  sends a round trip later, into the closed part: a burst of 429s, shut again.

A known window of 40 per second (window mode from the start) takes 15.0 s and 14 429s:
the mode fits; what fails is learning W (and, without exact hints, finding the phase).
Bounding it needs a way to grow W at the reset itself (a send past W at the reset, not
after the answers) and a probe whose period is not the pause plus a round trip: neither
is a few lines, hence the strict xfails.

One pacer on the in-process backend, in virtual time; each 429 waited out by its
request unless the pacer says it waits it (``Pacer.paces_reset``) or it had no hint (a
bulk send's retry then waits for the pacer's admission)."""

from __future__ import annotations

import asyncio
import math

import pytest

from benchmarks.pacing_sim import VirtualTimeLoop
from opentrain_async import Pacer
from opentrain_async._pacing.backend import InMemoryPacingBackend

from .pacing_kit import known_window

N, WORKERS, LATENCY = 600, 40, 0.01
W, OPEN = 40, 0.02
IDEAL = N / W  # 15 s
BOUND = 3 * IDEAL
"""The bound asked for: within 3x the ideal, and no more than one 429 per send."""


class DutyCycle:
    """Up to ``W`` admitted per second, only in its first ``OPEN`` seconds; otherwise the
    wait to the next second (the fake server's ``acquire(now) -> wait | None``)."""

    def __init__(self) -> None:
        self._second = -1
        self._count = 0

    def acquire(self, now: float) -> float | None:
        second = math.floor(now)
        if second != self._second:
            self._second, self._count = second, 0
        if now - second < OPEN and self._count < W:
            self._count += 1
            return None
        return max(second + 1 - now, 1e-6)


def _told(style: str, wait: float) -> float | None:
    """The hint the pacer hears: ``header`` is a whole-second ``Retry-After``, the same
    1.0 a rounded body hint gives (the client passes either as seconds)."""
    if style == "exact":
        return wait
    if style in ("whole", "header"):
        return float(max(math.ceil(wait), 1))
    return None


async def _job(style: str, known: bool) -> tuple[int, int]:
    """(sends accepted, 429s) by ``BOUND`` virtual seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    if known:  # window mode with W known from the start, its reset at the next second
        backend = InMemoryPacingBackend(clock=loop.time, state=known_window(W, 1.0, start + 1))
        pacer = Pacer(backend=backend, clock=loop.time, sleep=asyncio.sleep)
    else:
        pacer = Pacer(clock=loop.time, sleep=asyncio.sleep)
    limiter = DutyCycle()
    left, accepted, refused = N, 0, 0

    def late() -> bool:
        return loop.time() - start > BOUND

    async def worker() -> None:
        nonlocal left, accepted, refused
        while left > 0 and not late():
            left -= 1
            while not late():
                sent_at = pacer.try_acquire()
                if sent_at is None:
                    sent_at = await pacer.acquire()
                await asyncio.sleep(LATENCY)
                wait = limiter.acquire(loop.time() - start)
                await asyncio.sleep(LATENCY)
                if wait is None:
                    pacer.on_success(sent_at)
                    accepted += 1
                    break
                refused += 1
                told = _told(style, wait)
                await pacer.on_throttle(sent_at, told)
                if told is not None and not pacer.paces_reset(told):
                    await asyncio.sleep(told)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    await pacer.flushed()
    return accepted, refused


def _run(style: str, known: bool = False) -> tuple[int, int]:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(_job(style, known))
    finally:
        loop.close()


@pytest.mark.xfail(
    strict=True,
    reason="W is learned from the slow start's few sends in the open 20 ms and grows only "
    "by a send past W a round trip after the reset, which the closed part refuses; a "
    "rounded or missing hint leaves it to a wall probe every pause + round trip, which "
    "finds the open 20 ms once in ~50 probes (bf47dc5: 1,256 s exact, ~18,900 s else)",
)
@pytest.mark.parametrize("style", ["exact", "whole", "header", "none"])
def test_a_limiter_open_20_ms_a_second_is_paced_within_3x(style: str) -> None:
    """600 sends within 3x the ideal 15 s, at most one 429 per send on the whole."""
    accepted, refused = _run(style)
    assert (accepted, refused <= N) == (N, True)


def test_a_known_window_of_the_cycle_paces_it_at_its_rate() -> None:
    """Held: told W = 40 per second, window mode sends W at each reset, all inside the
    open 20 ms (15.0 s, 14 429s on bf47dc5): the mode fits the limiter."""
    accepted, refused = _run("exact", known=True)
    assert accepted == N
    assert refused <= N / 10
