"""A JSONL line naming ``content`` (or ``conversationId``, ``key``) twice is a bad line.

A CSV header with two ``content`` columns is refused; the same mistake in JSON Lines (a
template merged twice, a hand edit) sent the last value silently, which may be the wrong
text to the wrong person.  Now it is that line's problem, like any other bad line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli


@pytest.mark.parametrize("field", ["content", "conversationId", "key"])
async def test_a_field_given_twice_is_a_bad_line_and_nothing_is_sent(
    field: str, server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    values = {"conversationId": f'"{conv}"', "content": '"hello"', "key": '"k1"'}
    twice = {**values, field: values[field].replace('"', '"x', 1)}
    pairs = [f'"{name}": {value}' for name, value in values.items()]
    pairs.append(f'"{field}": {twice[field]}')
    job = tmp_path / "job.jsonl"
    job.write_text("{" + ", ".join(pairs) + "}\n")
    result = await run_cli("bulk", str(job), "--dry-run", env=cli_env(server, tmp_path))
    assert result.code == 2, result.out + result.err
    assert f"line 1: {field!r} is given twice" in result.out + result.err
    result = await run_cli("bulk", str(job), env=cli_env(server, tmp_path))
    assert server.stats()["sends"] == 0, result.err


async def test_repeated_names_elsewhere_in_the_line_are_left_alone(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Other fields are the user's (kept in a --failures row): not ours to judge."""
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(f'{{"conversationId": "{conv}", "content": "hi", "note": 1, "note": 2}}\n')
    result = await run_cli("bulk", str(job), env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert server.stats()["sends"] == 1
