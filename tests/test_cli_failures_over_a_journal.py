"""``--failures FILE`` naming another job's journal was taken as any file: replaced by
the failure rows (a run with failures) or deleted (a run without), so that job's record
of what it delivered was gone and its rerun could not resume (or, the broken journal
removed, sent everything again).  Only this job's own journal was refused.  Now any
journal of ours is refused before anything is sent, and left as it was.
(Both cases failed on main: the journal was overwritten, then deleted.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl


@pytest.mark.parametrize("failing", [True, False], ids=["with-failures", "without-failures"])
async def test_failures_naming_another_job_s_journal_is_refused(
    server: FakeOpenTrain, tmp_path: Path, failing: bool
) -> None:
    conv = server.add_conversation()
    first = write_jsonl(tmp_path / "first.jsonl", [{"conversationId": conv, "content": "one"}])
    journal = tmp_path / "first.journal"
    done = await cli("bulk", str(first), "--journal", str(journal), server=server)
    assert done.code == 0, done.err
    before = journal.read_bytes()
    second = write_jsonl(
        tmp_path / "second.jsonl",
        [{"conversationId": conv if not failing else "conv_gone", "content": "two"}],
    )
    result = await cli(
        "bulk", str(second), "--no-journal", "--failures", str(journal), server=server
    )
    assert result.code == 2, result.err
    assert "journal" in result.err
    assert journal.read_bytes() == before
    assert server.stats()["sends"] == 1  # the first job's only
    again = await cli("bulk", str(first), "--journal", str(journal), server=server)
    assert again.code == 0, again.err
    assert server.stats()["sends"] == 1
