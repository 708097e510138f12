"""What pacing tests build again and again: a window's state as a pacer learns it, and
an in-memory state a pacer reaches as if over a network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from opentrain_async._pacing.backend import InMemoryPacingBackend, Reservation
from opentrain_async._pacing.state import PacingFeedback, PacingState


def known_window(w: int, window: float, reset: float, **changes: Any) -> PacingState:
    """A window of ``w`` per ``window`` seconds, learned as a pacer learns it (one cut a
    window before ``reset``), its next reset at ``reset``; ``changes`` on top."""
    state = PacingState(
        limit=w / window,
        searching=False,
        origin=reset - window,
        cut_at=reset - window,
        cuts=2,
        successes=w,
        window_hint=window,
        pause_until=reset,
        win_reset=reset,
    )
    return attrs.evolve(state, **changes)


class Shared:
    """An in-memory state reached as if over a network (not an ``InMemoryPacingBackend``:
    the pacer sees only what reservations and its own reports return, as with Redis)."""

    def __init__(self, inner: InMemoryPacingBackend) -> None:
        self.inner = inner
        self.tuning = inner.tuning

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        return await self.inner.reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        return await self.inner.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        return await self.inner.load()

    async def aclose(self) -> None:
        """Nothing opened."""

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        """Nothing to name."""
