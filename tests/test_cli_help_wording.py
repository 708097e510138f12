"""What ``--help`` says: every option a user may need is shown and says what it does."""

from __future__ import annotations

import pytest

from opentrain_async._cli import build_parser

from .cli_helpers import ROOT


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_bulk_help_shows_grace_and_progress_interval(capsys: pytest.CaptureFixture[str]) -> None:
    """``--grace`` and ``--progress-interval`` are in ``bulk --help`` and docs/cli.md."""
    text = _help(capsys, "bulk")
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for option in ("--grace SECONDS", "--progress-interval SECONDS"):
        assert option in text
        assert f"`{option}`" in docs


def test_retry_failed_help_does_not_require_journal(capsys: pytest.CaptureFixture[str]) -> None:
    """Every run from a file has a journal: the help no longer says "with --journal"."""
    text = _help(capsys, "bulk")
    assert "with --journal" not in text
    assert "--retry-failed resend inputs the journal recorded as failed" in text


def test_concurrency_help_says_why_16(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's default differs from the SDK's 64; the help says why."""
    assert "lower than the SDK's 64" in _help(capsys, "bulk")


def test_messages_help_says_oldest_first(capsys: pytest.CaptureFixture[str]) -> None:
    """The output is oldest first; the help said "newest first"."""
    text = _help(capsys, "messages")
    assert "oldest first" in text
    assert "newest first" not in text
