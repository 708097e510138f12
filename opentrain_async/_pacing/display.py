"""What a pacer shows a progress display (``Pacer.describe``)."""

from __future__ import annotations

from typing import Protocol

from .state import PacingState

__all__ = ["describe"]


class _Shown(Protocol):
    """What ``describe`` reads of a ``Pacer`` (a protocol: pacer.py imports this module)."""

    @property
    def state(self) -> PacingState: ...

    def pause_remaining(self) -> float: ...

    def current_rate(self, now: float | None = None) -> float | None: ...


def describe(pacer: _Shown, now: float) -> str:
    """A short human description of the current pace (for progress displays), ``now`` on
    the pacer's clock."""
    paused = pacer.pause_remaining()
    rate = pacer.current_rate(now + max(paused, 0.0))
    # Two significant figures under 10/s: one send per 2 s is "0.5/s", not "0/s".
    pace = "unpaced" if rate is None else f"{rate:,.0f}/s" if rate >= 10 else f"{rate:.2g}/s"
    if rate is not None:
        pace += " (learned)" if pacer.state.limit is not None else " (stated)"
    if paused >= 1:  # a long wait is never silent (a 429's hint)
        return f"paused {paused:,.0f}s more (429), then {pace}"
    return pace
