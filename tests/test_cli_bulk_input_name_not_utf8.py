"""An input file whose name is not UTF-8 (a byte such as ``\\xff`` in a Linux file
name, which Python reads as a lone surrogate): ``bulk`` ended in a traceback before
sending anything, writing the job's content lock's holder line (``pid ..., input
PATH``) as strict UTF-8.  Now it runs, and its journal (whose header holds that name,
surrogates passed) is still told apart as a journal by ``--failures`` of another job
(``_summary._holds_a_journal``: held on main).  (Failed on main: UnicodeEncodeError.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="a file name that is not UTF-8: Linux takes any bytes"
)


async def test_a_job_whose_input_name_is_not_utf8_runs_and_its_journal_is_kept(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    odd = tmp_path / os.fsdecode(b"first-\xff.jsonl")
    first = write_jsonl(odd, [{"conversationId": conv, "content": "one"}])
    journal = tmp_path / "first.journal"
    done = await cli("bulk", str(first), "--journal", str(journal), server=server)
    assert done.code == 0, done.err
    before = journal.read_bytes()
    assert b"\xed\xb3\xbf" in before  # the path's byte, as a surrogate passed
    second = write_jsonl(tmp_path / "second.jsonl", [{"conversationId": "gone", "content": "x"}])
    result = await cli(
        "bulk", str(second), "--no-journal", "--failures", str(journal), server=server
    )
    assert result.code == 2, result.err
    assert "journal" in result.err
    assert journal.read_bytes() == before
    assert server.stats()["sends"] == 1
