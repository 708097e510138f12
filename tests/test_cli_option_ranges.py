"""Numbers given to the command line beyond what they can mean: a usage error naming the
option and its range (exit 2, nothing sent, no traceback).  ``--rate 1e-300`` was taken
and a job's second line then waited for ever; ``--rate inf`` got past the flag and failed
as "could not start" naming the SDK's ``rate_limit``; the demo's ``--server-rate 0``
ended in a ZeroDivisionError."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async._cli import build_parser
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("--rate", "1e-300", "between 0.001 and 100,000 messages/second"),
        ("--rate", "inf", "between 0.001 and 100,000 messages/second"),
        ("--rate", "1e9", "between 0.001 and 100,000 messages/second"),
        ("--progress-interval", "1e-300", "between 0.1 and 3,600 seconds"),
        ("--progress-interval", "inf", "between 0.1 and 3,600 seconds"),
    ],
)
async def test_bulk_numbers_out_of_range_are_usage_errors(
    server: FakeOpenTrain, tmp_path: Path, option: str, value: str, rule: str
) -> None:
    conversation = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conversation, "content": "hi"}])
    result = await run_cli(
        "bulk", str(job), "--no-journal", option, value, env=cli_env(server, tmp_path)
    )
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    last = result.err.strip().splitlines()[-1]
    assert f"error: argument {option}: must be {rule}, got {value}" in last
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize("value", ["1e-300", "inf", "nan"])
async def test_messages_poll_interval_out_of_range_is_a_usage_error(
    server: FakeOpenTrain, tmp_path: Path, value: str
) -> None:
    conversation = server.add_conversation()
    result = await run_cli(
        "messages", conversation, "--interval", value, env=cli_env(server, tmp_path)
    )
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "argument --interval: must be between 0.01 and 3,600 seconds" in result.err
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize("value", ["0", "nan"])
async def test_the_demo_server_rate_out_of_range_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    result = await run_cli(
        "demo", "--messages", "3", "--server-rate", value, env=cli_env(None, tmp_path)
    )
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert "argument --server-rate: must be between 1 and 100,000 messages/second" in result.err
    assert result.out == ""


def test_the_demo_job_size_has_a_ceiling(capsys: pytest.CaptureFixture[str]) -> None:
    """``demo --messages`` builds its job in memory first: a billion is a typo."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["demo", "--messages", "1000000000"])
    assert exit_.value.code == 2
    assert "argument --messages: must be at most 1,000,000" in capsys.readouterr().err
