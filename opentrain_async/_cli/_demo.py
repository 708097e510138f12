"""``opentrain-async demo``: a real bulk job against the embedded fake server.

The fake server runs in this process on loopback with a token-bucket limit the client
is not told about, and a few conversations that refuse messages.  The job is written
to a temporary JSONL file and run through exactly the code ``bulk --journal`` uses;
at the end the server's own counters are printed next to the client's summary.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentrain_async._config import Settings, api_root
from opentrain_async.testing import FakeOpenTrain, TokenBucket

from ._input import JobSource
from ._job import JobOptions, execute, print_summary

__all__ = ["run_demo"]

ORDINARY = 50
BLOCKED_PHRASE = "FREE MONEY"


def _width(stream: Any) -> int:
    """Columns to wrap the demo's text at: the terminal's (at most 100), else 100."""
    try:
        return min(os.get_terminal_size(stream.fileno()).columns - 1, 100)
    except (OSError, ValueError, AttributeError):
        return 100


def _introduce(
    say: Callable[[str], None], base_url: str, limit: TokenBucket, lines: list[str], journal: Path
) -> None:
    """What the demo is about to do."""
    say("opentrain-async demo: a bulk job against the embedded fake OpenTrain server")
    say(
        f"  server   {base_url} (this process, loopback); POST /messages "
        f"limited to {limit.rate:,.0f}/s (token bucket, burst {limit.burst})"
    )
    say(
        "  client   NOT told the limit: it learns it from the server's 429s "
        "(bulk --rate would state it)"
    )
    say(
        f"  job      {len(lines):,} JSONL lines to {ORDINARY} conversations, plus one "
        "read-only (409), one we are not part of (403), texts containing "
        f"{BLOCKED_PHRASE!r} (403 policy), and 3 invalid lines"
    )
    say(f"  journal  {journal} (crash-safe; deleted with the demo)")
    say("")


def _report(
    say: Callable[[str], None],
    stats: dict[str, int],
    deliverable: int,
    limit: TokenBucket,
    wall: float,
    honest: bool,
) -> None:
    """What the server recorded, against what the job should have done."""
    # The bucket starts full, so the first `burst` sends pass at once.
    ideal = max(deliverable - limit.burst, 0) / limit.rate
    say("")
    say("what the server recorded (its own counters, not the client's):")
    say(
        f"  requests {stats['requests']:,} · sends {stats['sends']:,} · "
        f"429s answered {stats['rate_limited']:,} · committed {stats['committed']:,} "
        f"(expected {deliverable:,}) · duplicates {stats['duplicates']:,}"
    )
    say(
        f"  {deliverable:,} deliverable messages at {limit.rate:,.0f}/s (burst {limit.burst}) "
        f"take at least {ideal:.2f} s; this run took {wall:.2f} s "
        f"({wall / ideal if ideal else 0:.2f}x that, including start-up and refused sends)"
    )
    say(
        "demo ok: every deliverable message committed exactly once; the refusals and bad "
        "lines are the demo's on purpose (a real `bulk` run would exit 1 for them)"
        if honest
        else "demo FAILED: the server's records do not match the job"
    )


def _sayer(stream: Any) -> Callable[[str], None]:
    """Print to `stream`, wrapped to its width; continuation lines align under the text
    after a leading label (``"  server   ..."``)."""
    width = _width(stream)

    def say(text: str) -> None:
        label = len(text) - len(text.lstrip(" "))
        if text[label:].split(" ", 1)[0] in ("server", "client", "job", "journal"):
            label += 9
        lines = textwrap.wrap(
            text, width=width, subsequent_indent=" " * label, break_on_hyphens=False
        )
        print("\n".join(lines) if lines else "", file=stream)

    return say


def _job(
    messages: int, ordinary: list[str], read_only: str, outsider: str
) -> tuple[list[str], int]:
    """The job's lines, and how many of them the server should commit."""
    lines: list[str] = []
    deliverable = 0

    def add(record: Any) -> None:
        lines.append(record if isinstance(record, str) else json.dumps(record))

    for i in range(messages - 3):
        key = f"demo-{i:05d}"
        content = f"Shift {i:05d}: your batch is live, reply STOP to opt out"
        if i % 97 == 13:
            conv = read_only
        elif i % 131 == 7:
            conv = outsider
        elif i % 113 == 5:
            conv, content = ordinary[i % ORDINARY], f"Shift {i:05d}: {BLOCKED_PHRASE} inside!"
        else:
            conv = ordinary[i % ORDINARY]
            deliverable += 1
        add({"conversationId": conv, "content": content, "key": key})
    # Three lines the SDK's validation rejects before any request is made.
    add({"conversationId": ordinary[0], "content": "", "key": "demo-empty"})
    # 5,001 emoji are 10,002 UTF-16 code units: over the limit, as the server counts.
    add({"conversationId": ordinary[1], "content": "🚀" * 5001, "key": "demo-too-long"})
    add('{"conversationId": "conv_0001", "content": "unterminated')
    return lines, deliverable


async def run_demo(
    *, messages: int = 2000, server_rate: float = 400.0, as_json: bool = False
) -> int:
    """Run the demo; 0 when the server's records match what the job should have done.

    The job's own exit code would be 1 (some inputs are refused on purpose); the demo
    instead checks its claims: every deliverable message committed once, no duplicates.
    """
    out, err = sys.stdout, sys.stderr
    limit = TokenBucket(rate=server_rate, burst=20)
    async with FakeOpenTrain(record_requests=False) as server:
        ordinary = [server.add_conversation() for _ in range(ORDINARY)]
        read_only = server.add_conversation(send_block="read_only_conversation")
        outsider = server.add_conversation(participant=False)
        server.block_content(BLOCKED_PHRASE, policy="spam")
        server.set_rate_limit(limit)
        lines, deliverable = _job(messages, ordinary, read_only, outsider)
        with tempfile.TemporaryDirectory(prefix="opentrain-demo-") as tmp:
            job = Path(tmp) / "job.jsonl"
            job.write_text("\n".join(lines) + "\n", encoding="utf-8")
            journal = Path(tmp) / "journal.jsonl"
            _introduce(_sayer(err if as_json else out), server.base_url, limit, lines, journal)
            options = JobOptions(
                concurrency=16,
                journal=journal,
                live=err.isatty(),
                # Independent notices: a refused one does not stop its conversation.
                on_failure="continue",
            )
            settings = Settings(server.token, api_root(server.base_url), "the demo server")
            started = options.clock.monotonic()
            summary = await execute(JobSource(str(job)), options, settings, err=err)
            wall = options.clock.monotonic() - started
            stats = server.stats()
    # The bucket starts full, so the first `burst` sends pass at once.
    ideal = max(deliverable - limit.burst, 0) / server_rate
    honest = stats["committed"] == deliverable == summary.sent and stats["duplicates"] == 0
    if as_json:
        print_summary(summary, options, err, err)
        result = {
            "bulk": summary.as_json(),
            "server": stats,
            "idealSeconds": round(ideal, 2),
            "ok": honest,
        }
        print(json.dumps(result), file=out)
        return 0 if honest else 1
    print_summary(summary, options, out, err)
    _report(_sayer(out), stats, deliverable, limit, wall, honest)
    return 0 if honest else 1
