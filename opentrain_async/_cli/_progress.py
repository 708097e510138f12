"""Progress for a bulk run: a rich live bar on a terminal, plain log lines otherwise.

Both read the same figures: done/total, the effective rate, ETA, requests in flight,
429s seen, and the client's current pace (``client.pacer.describe()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

if TYPE_CHECKING:
    from opentrain_async._client import OpenTrainClient

__all__ = ["ProgressDisplay"]


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressDisplay:
    """Shows a run's progress until closed; ``advance()`` once per outcome."""

    def __init__(
        self,
        client: OpenTrainClient,
        total: int,
        *,
        live: bool,
        stream: TextIO | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self.total = total
        self.done = 0
        self._live = live
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._task: asyncio.Task[None] | None = None
        self._rich: RichProgress | None = None
        self._rich_task: TaskID | None = None

    def _figures(self) -> tuple[float, float | None, str]:
        elapsed = max(self._clock() - self._started, 1e-9)
        rate = self.done / elapsed
        remaining = self.total - self.done
        eta = remaining / rate if rate > 0 else None
        client = self._client
        extra = (
            f"in flight {client.in_flight:>3} · 429s {client.stats.rate_limited:,} · "
            f"pace {client.pacer.describe()}"
        )
        return rate, eta, extra

    def line(self) -> str:
        """One plain progress line."""
        rate, eta, extra = self._figures()
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"progress: {self.done:,}/{self.total:,} ({percent:.0f}%) · {rate:,.0f} msg/s · "
            f"eta {_eta(eta)} · {extra}"
        )

    async def __aenter__(self) -> ProgressDisplay:
        self._started = self._clock()
        if self._live:
            console = Console(file=self._stream)
            self._rich = RichProgress(
                TextColumn("[bold]sending"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=console,
                refresh_per_second=8,
                transient=False,
            )
            self._rich.start()
            self._rich_task = self._rich.add_task("send", total=self.total, rate="", extra="")
            self._task = asyncio.create_task(self._tick(0.125))
        else:
            self._task = asyncio.create_task(self._tick(self._interval))
        return self

    async def _tick(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.refresh()

    def refresh(self) -> None:
        """Redraw the bar, or print one plain line."""
        if self._rich is not None and self._rich_task is not None:
            rate, _, extra = self._figures()
            self._rich.update(
                self._rich_task, completed=self.done, rate=f"{rate:,.0f} msg/s", extra=extra
            )
        else:
            print(self.line(), file=self._stream, flush=True)

    def advance(self) -> None:
        """Count one more input done."""
        self.done += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rich is not None:
            self.refresh()
            self._rich.stop()
        elif self.total and exc_type is None:
            print(self.line(), file=self._stream, flush=True)
