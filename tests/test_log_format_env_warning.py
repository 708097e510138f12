"""``OPENTRAIN_LOG_FORMAT`` set to a format that does not exist: said once on stderr,
naming the accepted values, as ``OPENTRAIN_LOG=junk`` is (``xml`` was ignored in
silence, and the operator waited for JSON lines that never came)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async._logs import log_format_from_env

from .cli_helpers import cli_env, run_cli, write_jsonl

WARNING = "opentrain_async: ignoring OPENTRAIN_LOG_FORMAT='xml' (use text or json)"


def test_an_unknown_format_is_reported_and_read_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert log_format_from_env({"OPENTRAIN_LOG_FORMAT": " XML "}) == "text"
    assert capsys.readouterr().err.strip() == WARNING


@pytest.mark.parametrize("opentrain_log", ["", "info"])
async def test_the_cli_says_it_once(tmp_path: Path, opentrain_log: str) -> None:
    """Once, whether only the CLI reads the variable or ``OPENTRAIN_LOG``'s handler (set
    up at import) read it first."""
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "c1", "content": "hi"}])
    env = cli_env(None, tmp_path, OPENTRAIN_LOG_FORMAT="xml", OPENTRAIN_LOG=opentrain_log)
    result = await run_cli("bulk", str(job), "--dry-run", "--no-journal", env=env)
    assert result.code == 0, result.err
    assert result.err.count("OPENTRAIN_LOG_FORMAT") == 1, result.err
    assert WARNING in result.err
