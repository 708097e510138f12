"""Seconds given to the bulk command: a value that means nothing (NaN, negative) is a
usage error naming the option, before anything is read or sent.  ``--grace nan`` was
taken, and a SIGTERM then printed "waiting up to nan s"."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--grace", "nan"),
        ("--grace", "-1"),
        ("--grace", "soon"),
        ("--progress-interval", "0"),
        ("--progress-interval", "nan"),
        ("--progress-interval", "-2"),
    ],
)
async def test_meaningless_seconds_are_usage_errors(
    server: FakeOpenTrain, tmp_path: Path, option: str, value: str
) -> None:
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "c", "content": "hi"}])
    result = await run_cli("bulk", str(job), option, value, env=cli_env(server, tmp_path))
    assert result.code == 2
    assert "Traceback" not in result.err
    assert f"error: argument {option}: " in result.err.strip().splitlines()[-1]
    assert server.stats()["requests"] == 0


@pytest.mark.parametrize("value", ["0", "2.5", "inf"])
async def test_grace_takes_any_number_of_seconds_from_zero(
    server: FakeOpenTrain, tmp_path: Path, value: str
) -> None:
    conversation = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conversation, "content": "hi"}])
    result = await run_cli("bulk", str(job), "--grace", value, env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert server.stats()["committed"] == 1
