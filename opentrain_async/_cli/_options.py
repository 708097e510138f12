"""What a ``bulk`` job was asked to do, and the words its parts share: exit codes, the
start-up failure, one row per input not delivered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from opentrain_async._time import SYSTEM_CLOCK, Clock

from ._journal import JournalStore

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_START",
    "EXIT_USAGE",
    "Failure",
    "Interrupted",
    "JobOptions",
    "StartError",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_START = 3


class StartError(Exception):
    """The run could not start (exit 3): auth, network, a token that cannot send."""


class Interrupted(Exception):
    """SIGINT/SIGTERM before any send (the pre-send check, taking the journal): the run
    stopped at once, nothing sent; exit 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@attrs.define
class JobOptions:
    """What the ``bulk`` command was asked to do."""

    concurrency: int = 16
    rate: float | None = None
    journal: Path | None = None
    """An explicit journal path (default: ``default_journal_path`` of the input)."""
    no_journal: bool = False
    retry_failed: bool = False
    allow_changed: bool = False
    """Send inputs whose key was delivered with other content (default: refuse)."""
    reuse_journal: bool = False
    """Use a journal written for another input file or API root."""
    failures: Path | None = None
    """Write every input not delivered here, in the input's format."""
    ordered: bool = True
    """A conversation's lines one after the other (``--unordered``: concurrently)."""
    on_failure: str = "stop"
    """``--on-failure``: ``stop`` a conversation at a line that failed for good, or
    ``continue`` with its later lines."""
    dry_run: bool = False
    strict: bool = False
    json: bool = False
    live: bool = False
    """A live progress bar (a terminal) rather than periodic log lines."""
    progress_interval: float = 2.0
    settle: float = 1.0
    """Seconds an interrupted send is given to finish server-side before read-back."""
    pacing_url: str | None = None
    """Redis URL of a limit shared with other processes (None: $OT_PACING_URL)."""
    grace: float = 10.0
    """After SIGINT/SIGTERM: seconds sends on the wire get to finish and be journaled."""
    journal_store: JournalStore | None = None
    """Where the journal lives, when not in a file (``--journal``/the default path)."""
    clock: Clock = SYSTEM_CLOCK
    """The time seam: the client's, the journal's, the settle wait's and the progress
    display's clocks."""


@attrs.frozen
class Failure:
    """One input that was not delivered, for the summary and ``--failures``: its line
    (the failures file is matched to the input by it), without its content."""

    line: int
    reason: str
    error: str
    key: str | None = None
    conversation_id: str | None = None
    earlier: bool = False
    """Failed in an earlier run (skipped by this one)."""

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"line": self.line, "reason": self.reason, "error": self.error}
        if self.key is not None:
            record["key"] = self.key
        if self.conversation_id is not None:
            record["conversationId"] = self.conversation_id
        if self.earlier:
            record["earlierRun"] = True
        return record
