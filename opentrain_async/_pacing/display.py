"""What a pacer shows a progress display (``Pacer.describe``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pacer import Pacer

__all__ = ["describe"]


def describe(pacer: Pacer, now: float) -> str:
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
