"""One draw of the family as the shared pacing state saw it: the state after each 429.

``benchmarks.family_timeline`` says what the server admitted and refused per step; this
says what the pacer made of it.  The draw runs in virtual time exactly as
``benchmarks.family_sim`` runs it (same seed, this SDK), with ``apply_report`` and
``apply_reserve`` wrapped: one line per 429 reported, per success report that moved the
window's first success, and per reservation that opened a window or granted a batch of
a window's W, each with the fields a window's mode reads (limit, ``window_hint``, W and
its sends, its opening, reset and pause, first and last success, stretch).  Branch
``slide2`` traced the sliding windows' first resets with it (times on the simulator's
clock, from the loop's start; ``--since`` and ``--lines`` to cut it short).

    python -m benchmarks.family_state 5435 --max-window 2
    python -m benchmarks.family_state 5435 --max-window 2 --since 1.9 --lines 80
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

import opentrain_async._pacing.backend as backend
from opentrain_async._pacing.state import PacingState

from .family import draw
from .family_sim import run_draw

__all__ = ["main"]


def _f(value: float | None) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else str(value)


def _line(tag: str, now: float, s: PacingState, extra: str) -> str:
    return (
        f"{now:7.3f} {tag:4} limit={_f(s.limit)} hint={_f(s.window_hint)} W={s.win_size} "
        f"sent={s.win_sent} opened={_f(s.win_opened)} reset={_f(s.win_reset)} "
        f"pause={_f(s.pause_until)} first/last={_f(s.win_first)}/{_f(s.win_last)} "
        f"stretch={_f(s.win_stretch)} ok={s.successes} 429s={s.throttles} {extra}"
    )


def trace(
    seed: int, max_window: float, since: float, lines: int, processes: int | None = None
) -> Any:
    """Run draw ``seed`` with the state printed as it changes; returns its result."""
    report, reserve = backend.apply_report, backend.apply_reserve
    printed = 0

    def show(tag: str, now: float, state: PacingState, extra: str) -> None:
        nonlocal printed
        if now >= since and printed < lines:
            printed += 1
            print(_line(tag, now, state, extra))

    def traced_report(state: PacingState, now: float, fb: Any, cap: Any, tuning: Any) -> Any:
        new = report(state, now, fb, cap, tuning)
        sent = f"sent_at={_f(fb.throttled_at)} hint={_f(fb.retry_after)} spread={fb.spread}"
        if fb.throttled:
            show("429", now, new, f"{sent} +ok={fb.successes}")
        elif fb.successes and new.win_first != state.win_first:
            show("ok", now, new, f"latest={_f(fb.latest_accepted)} +ok={fb.successes}")
        return new

    def traced_reserve(state: PacingState, now: float, count: int, *args: Any) -> Any:
        new, got = reserve(state, now, count, *args)
        if new.win_opened != state.win_opened or (new.window_hint > 0 and got.count > 1):
            show("res", now, new, f"n={got.count} first={_f(got.first)} asked={count}")
        return new, got

    backend.apply_report, backend.apply_reserve = traced_report, traced_reserve
    try:
        return run_draw(draw(seed, max_window=max_window, processes=processes))
    finally:
        backend.apply_report, backend.apply_reserve = report, reserve


def main(argv: list[str] | None = None) -> None:
    logging.getLogger("opentrain_async").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.family_state")
    parser.add_argument("seed", type=int)
    parser.add_argument(
        "--max-window", type=float, default=60.0, help="longest window (family_run: 2)"
    )
    parser.add_argument("--since", type=float, default=0.0, help="print from this time on")
    parser.add_argument("--lines", type=int, default=400, help="print at most this many")
    parser.add_argument("--processes", type=int, help="the draw shared by this many")
    args = parser.parse_args(argv)
    result = trace(args.seed, args.max_window, args.since, args.lines, args.processes)
    print(result.draw.describe())
    print(f"{result.seconds:.2f} s, ideal {result.ideal:.2f} s, {result.ratio:.2f}x")


if __name__ == "__main__":
    main()
