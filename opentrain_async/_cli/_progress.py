"""Progress for a bulk run: one live line on a terminal, plain log lines otherwise.

Both show the same figures, in the summary's number format and against the same total
(every input, bad lines and journal skips included, counted as done from the start):
done/total, failures so far, percent, ETA, rate, requests in flight, 429s and the
client's pace. The live line is fitted to the terminal's width by dropping the least
important fields first (the bar shrinks before anything else goes). When a request
backs off for a reason other than a 429, a ``retrying in ... because ...`` line says
so at once, so an unreachable host is never a silent wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from opentrain_async._logs import terminal_safe
from opentrain_async._retry import RetryEvent

if TYPE_CHECKING:
    from opentrain_async._client import OpenTrainClient

__all__ = ["ProgressDisplay", "clip_to_terminal", "describe_retry", "fit_fields"]

_CLEAR = "\r\x1b[K"
_BAR_MIN, _BAR_MAX = 10, 30
_REPEAT_AFTER = 5.0  # seconds before the same retry reason is said again
# Field names from most to least important: the first ones survive a narrow terminal.
_IMPORTANCE = ("count", "failed", "percent", "eta", "rate", "bar", "429s", "flight", "pace")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


_REASONS = {
    "rate_limited": "the server answered 429 (rate limited)",
    "connection_failed": "the connection failed",
    "timeout": "the request timed out",
    "server_error": "the server answered with an error",
}


def describe_retry(event: RetryEvent, max_attempts: int | None = None) -> str:
    """``retrying in 2.0 s (attempt 2 of 6) because the connection failed: <error>``."""
    attempt = f"attempt {event.attempt + 1}" + (f" of {max_attempts}" if max_attempts else "")
    why = _REASONS.get(event.reason, event.reason.replace("_", " "))
    detail = terminal_safe(str(event.error).strip())  # it quotes the server (request id)
    if detail:
        why = f"{why}: {detail}"
    return f"retrying in {event.wait:.1f} s ({attempt}) because {why}"


def fit_fields(fields: dict[str, str], width: int) -> str:
    """Join the fields in their order, dropping the least important until the line fits.

    ``bar`` is special: it is drawn from its fraction (``fields["bar"]`` is the fill
    0..1 as text) in whatever room is left, between 10 and 30 columns.
    """
    kept = dict(fields)
    while True:
        fixed = [v for k, v in kept.items() if k != "bar"]
        length = sum(len(v) for v in fixed) + max(len(kept) - 1, 0)
        room = width - length
        if "bar" in kept and room >= _BAR_MIN + 2:
            cells = min(room - 2, _BAR_MAX)
            fill = int(float(kept["bar"]) * cells + 1e-9)
            bar = "[" + "#" * fill + "-" * (cells - fill) + "]"
            return " ".join(bar if k == "bar" else v for k, v in kept.items())
        if "bar" not in kept and length <= width:
            return " ".join(kept.values())
        droppable = [k for k in reversed(_IMPORTANCE) if k in kept and k != "count"]
        if not droppable:
            return " ".join(kept.values())[:width]
        del kept[droppable[0]]


def clip_to_terminal(text: str, stream: TextIO) -> str:
    """`text` cut to the terminal's width with an ellipsis, when `stream` is a terminal;
    untouched otherwise (logs keep every character)."""
    if not stream.isatty():
        return text
    width = _columns(stream)
    return text if len(text) <= width else text[: width - 1] + "…"


def _columns(stream: TextIO) -> int:
    """The terminal width of `stream` (80 when unknown), less one column for the cursor."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 80
    return max(columns - 1, 20)


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
        already_done: int = 0,
        already_failed: int = 0,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self.total = total
        self.done = already_done
        self.failed = already_failed
        self._base = already_done
        self._live = live
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._width = width or (lambda: _columns(self._stream))
        self._max_attempts = max_attempts
        self._started = clock()
        self._task: asyncio.Task[None] | None = None
        self._last_note: tuple[str, float] | None = None

    def _fields(self) -> dict[str, str]:
        """The figures of the moment, each formatted, in display order."""
        elapsed = max(self._clock() - self._started, 1e-9)
        sent = self.done - self._base
        rate = sent / elapsed
        remaining = self.total - self.done
        eta = remaining / rate if rate > 0 else None
        fraction = self.done / self.total if self.total else 1.0
        client = self._client
        return {
            "bar": f"{fraction:.4f}",
            "count": f"{self.done:,}/{self.total:,}",
            "percent": f"{100.0 * fraction:.0f}%",
            "failed": f"· {self.failed:,} failed",
            "rate": f"· {rate:,.0f} msg/s",
            "eta": f"· eta {_eta(eta)}",
            "flight": f"· in flight {client.in_flight}",
            "429s": f"· 429s {client.stats.rate_limited:,}",
            "pace": f"· pace {client.pacer.describe()}",
        }

    def line(self) -> str:
        """One plain progress line (every field)."""
        fields = self._fields()
        del fields["bar"]
        count, percent = fields.pop("count"), fields.pop("percent")
        rest = " ".join(fields.values())
        return f"progress: {count} ({percent}) {rest}"

    def live_line(self, width: int | None = None) -> str:
        """The live line, fitted to `width` columns (the terminal's by default)."""
        return fit_fields(self._fields(), self._width() if width is None else width)

    async def __aenter__(self) -> ProgressDisplay:
        self._started = self._clock()
        self._task = asyncio.create_task(self._tick(0.125 if self._live else self._interval))
        return self

    async def _tick(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self.refresh()

    def refresh(self) -> None:
        """Redraw the live line, or print one plain line."""
        if self._live:
            self._stream.write(_CLEAR + self.live_line())
            self._stream.flush()
        else:
            print(self.line(), file=self._stream, flush=True)

    def advance(self, ok: bool = True) -> None:
        """Count one more input done (a failure when not `ok`)."""
        self.done += 1
        if not ok:
            self.failed += 1

    def retrying(self, event: RetryEvent) -> None:
        """An ``on_retry`` hook: say at once why a request waits (429s only count); the
        same reason again is said at most every 5 s."""
        if event.reason == "rate_limited":
            return
        note = describe_retry(event, self._max_attempts)
        now = self._clock()
        if self._last_note is not None:
            last, at = self._last_note
            same = last.split(" because ", 1)[1] == note.split(" because ", 1)[1]
            if same and now - at < _REPEAT_AFTER:
                return  # the same trouble (many workers meet it at once), said just now
        self._last_note = (note, now)
        self.note(note)

    def note(self, text: str) -> None:
        """A line printed above the live line (or among the plain lines)."""
        if self._live:  # the note may wrap; only the live line must fit to redraw in place
            self._stream.write(_CLEAR + text + "\n")
            self._stream.write(self.live_line())
            self._stream.flush()
        else:
            print(text, file=self._stream, flush=True)

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
        if self._live:
            self.refresh()
            self._stream.write("\n")
            self._stream.flush()
        elif self.total and exc_type is None:
            print(self.line(), file=self._stream, flush=True)
