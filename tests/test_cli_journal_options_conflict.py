"""``--journal PATH`` together with ``--no-journal``: the run went ahead with no journal
at all (whichever came last), so the same command again sent everything twice, though
the user had named where the journal should go.  Now it is a usage error, nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


@pytest.mark.parametrize("journal_first", [True, False], ids=["journal-first", "no-journal-first"])
async def test_journal_and_no_journal_together_are_refused(
    server: FakeOpenTrain, tmp_path: Path, journal_first: bool
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "once"}])
    journal = ["--journal", str(tmp_path / "job.journal")]
    options = [*journal, "--no-journal"] if journal_first else ["--no-journal", *journal]
    env = cli_env(server, tmp_path)
    for _ in range(2):  # the same command twice: each sent "once" before
        result = await run_cli("bulk", str(job), *options, env=env)
        assert result.code == 2, result.err
        assert "--no-journal" in result.err
        assert "--journal" in result.err
        assert "Traceback" not in result.err
    assert server.stats()["sends"] == 0
