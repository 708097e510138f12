"""The bulk progress line: fitted to the terminal, failures live, the summary's total,
and a word when a request backs off."""

from __future__ import annotations

import io
from typing import Any

import attrs
import pytest

from opentrain_async import APIConnectionError, OpenTrainClient, RetryEvent
from opentrain_async._cli._progress import (
    ProgressDisplay,
    clip_to_terminal,
    describe_retry,
    fit_fields,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .cli_helpers import cli_env, run_cli, write_jsonl


@attrs.define
class _Stats:
    rate_limited: int = 12_345


@attrs.define
class _Pacer:
    def describe(self) -> str:
        return "401/s (learned)"


@attrs.define
class _Client:
    in_flight: int = 16
    stats: _Stats = attrs.Factory(_Stats)
    pacer: _Pacer = attrs.Factory(_Pacer)


def _display(total: int, stream: io.StringIO, **options: Any) -> tuple[ProgressDisplay, FakeTime]:
    time = FakeTime()
    display = ProgressDisplay(
        _Client(),  # type: ignore[arg-type]
        total,
        live=options.pop("live", True),
        stream=stream,
        clock=time.clock,
        **options,
    )
    return display, time


@pytest.mark.parametrize("width", [20, 40, 60, 79, 100, 159, 250])
def test_the_live_line_fits_and_keeps_the_most_important_fields(width: int) -> None:
    """At any width the line fits, the count is always there, and a field is only dropped
    after every less important one (the bar shrinks before any goes)."""
    display, time = _display(1_997_000, io.StringIO(), already_done=500_000, already_failed=3)
    time.advance(10)
    for _ in range(1_000):
        display.advance(ok=False)
    line = display.live_line(width)
    assert len(line) <= width
    assert "501,000/1,997,000" in line
    order = ["failed", "%", "eta", "msg/s", "[", "429s", "in flight", "pace"]
    present = [marker in line for marker in order]
    assert present == sorted(present, reverse=True), (width, line)
    if width >= 159:
        assert all(present)
        assert "1,003 failed" in line
        assert "429s 12,345" in line


def test_fit_fields_draws_the_bar_in_the_room_left() -> None:
    """The bar takes what is left, 10 to 30 cells, filled by its fraction."""
    fields = {"bar": "0.5000", "count": "5/10"}
    assert fit_fields(fields, 17) == "[#####-----] 5/10"
    assert fit_fields(fields, 100) == "[" + "#" * 15 + "-" * 15 + "] 5/10"
    assert fit_fields(fields, 10) == "5/10"


async def test_live_run_ends_at_the_summary_total_with_failures_shown() -> None:
    """Done starts at the inputs already settled (bad lines, skips); the final line reads
    total/total with every failure counted, then a newline."""
    out = io.StringIO()
    display, _ = _display(2_000, out, already_done=3, already_failed=3)
    async with display:
        for i in range(1_997):
            display.advance(ok=i % 40 != 0)
    last = out.getvalue().rsplit("\r\x1b[K", 1)[-1]
    assert last.endswith("\n")
    assert "2,000/2,000" in last
    assert "100%" in last
    assert "53 failed" in last


async def test_plain_lines_carry_the_same_figures() -> None:
    """Off a terminal: one line per interval and a final one, with every field."""
    out = io.StringIO()
    display, _ = _display(1_500, out, live=False, already_done=500)
    async with display:
        display.advance(ok=False)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("progress: 501/1,500 (33%) · 1 failed · ")
    for field in ("msg/s", "eta", "in flight 16", "429s 12,345", "pace 401/s (learned)"):
        assert field in line


def _event(reason: str, error: BaseException, attempt: int = 1) -> RetryEvent:
    return RetryEvent(
        method="POST",
        path="/messages",
        attempt=attempt,
        wait=2.04,
        reason=reason,
        request_id=None,
        error=error,
    )


def test_a_backoff_is_said_with_its_reason_at_most_every_five_seconds() -> None:
    """A connection failure is said at once, above the live line; the same trouble again
    within 5 s is not repeated (16 workers meet it together); 429s are only counted."""
    out = io.StringIO()
    display, time = _display(10, out, max_attempts=6)
    refused = APIConnectionError("POST /messages: cannot connect to 127.0.0.1:9")
    display.retrying(_event("connection_failed", refused))
    display.retrying(_event("connection_failed", refused, attempt=2))
    display.retrying(_event("rate_limited", refused))
    time.advance(4.5)
    display.retrying(_event("connection_failed", refused, attempt=3))
    time.advance(0.5)
    display.retrying(_event("connection_failed", refused, attempt=3))
    notes = [n.split("\n")[0] for n in out.getvalue().split("\r\x1b[K") if "\n" in n]
    assert notes == [
        "retrying in 2.0 s (attempt 2 of 6) because the connection failed: "
        "POST /messages: cannot connect to 127.0.0.1:9",
        "retrying in 2.0 s (attempt 4 of 6) because the connection failed: "
        "POST /messages: cannot connect to 127.0.0.1:9",
    ]


def test_describe_retry_names_every_reason() -> None:
    """Each retry reason reads as a sentence; an unknown one is still readable."""
    error = RuntimeError("boom")
    assert "timed out" in describe_retry(_event("timeout", error))
    assert "answered 429" in describe_retry(_event("rate_limited", error))
    assert "answered with an error" in describe_retry(_event("server_error", error))
    assert describe_retry(_event("cosmic_rays", RuntimeError(""))).endswith("because cosmic rays")


async def test_send_says_it_is_retrying_and_why(tmp_path: Any) -> None:
    """`send` that has to wait says so on stderr (attempt and reason), then succeeds."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=0.05)
        result = await run_cli("send", conv, "hi", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert "opentrain-async: retrying in " in result.err
    assert "(attempt 2 of 6) because the server answered 429 (rate limited)" in result.err


@pytest.mark.slow  # waits a second or more of real time
async def test_bulk_progress_counts_bad_lines_into_the_total(tmp_path: Any) -> None:
    """The plain progress line's total is every input, bad lines included, like the summary."""
    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        rows: list[Any] = [{"conversationId": conv, "content": f"m{i}"} for i in range(1_200)]
        rows.append("{not json")
        job = write_jsonl(tmp_path / "job.jsonl", rows)
        result = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    assert result.code == 1
    final = [line for line in result.err.splitlines() if line.startswith("progress: ")][-1]
    assert final.startswith("progress: 1,201/1,201 (100%) · 1 failed · ")
    assert result.json()["inputs"] == 1_201


def test_client_is_the_real_type_the_display_expects() -> None:
    """The stand-in above has the attributes ProgressDisplay reads from a real client."""
    client = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9")
    assert isinstance(client.in_flight, int)
    assert isinstance(client.stats.rate_limited, int)
    assert isinstance(client.pacer.describe(), str)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_clip_to_terminal_cuts_only_on_a_terminal() -> None:
    """On a terminal a long line is cut to the width with an ellipsis; piped, it is whole."""
    text = "x" * 200
    clipped = clip_to_terminal(text, _Terminal())  # no real terminal behind it: 80 columns
    assert clipped == "x" * 78 + "…"
    assert clip_to_terminal("short", _Terminal()) == "short"
    assert clip_to_terminal(text, io.StringIO()) == text
