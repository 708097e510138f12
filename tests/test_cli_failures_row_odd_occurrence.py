"""A ``--failures`` row fed back carries its identity, ``c:<digest>:<n>``.  Hand-edited
to a non-ASCII digit ("²": a digit to ``str.isdigit``, not to ``int``), the CLI raised
a ValueError traceback on a60ec89 (found by review7).  Now the odd identity is not
carried: the row is an input like any other, sent once."""

from __future__ import annotations

from pathlib import Path

from opentrain_async._cli._journal import content_hash
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


async def test_a_failures_row_with_a_superscript_occurrence_is_sent_without_traceback(
    tmp_path: Path,
) -> None:
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        odd = f"c:{content_hash(conv, 'hi')}:\u00b2"
        row = {"conversationId": conv, "content": "hi", "opentrain": {"id": odd}}
        job = write_jsonl(tmp_path / "failures.jsonl", [row])
        result = await run_cli("bulk", str(job), env=cli_env(server, tmp_path), cwd=tmp_path)
        assert "Traceback" not in result.err
        assert result.code == 0, result.err
        assert server.stats()["committed"] == 1
