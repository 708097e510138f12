"""A JSON Lines job with half an emoji in a line (``"\\ud83d"``, a lone surrogate: the
line is refused as invalid) and ``--failures``: writing that row raised
UnicodeEncodeError (UTF-8 cannot encode a lone surrogate), so the run ended in a
traceback after its summary and the failures file, every row of it, was lost.
Now the row keeps the character escaped, as the line had it, and fed back it is the
same bad line.  (Failed on main: a traceback, no failures file.)
"""

from __future__ import annotations

import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli


async def test_a_bad_line_with_half_an_emoji_is_written_to_the_failures_file(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    job = tmp_path / "job.jsonl"
    job.write_text(
        f'{{"conversationId": "{conv}", "content": "half \\ud83d emoji"}}\n'
        f'{{"conversationId": "conv_gone", "content": "refused"}}\n'
        f'{{"conversationId": "{conv}", "content": "fine"}}\n'
    )
    failures = tmp_path / "failures.jsonl"
    result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    rows = [json.loads(line) for line in failures.read_text("utf-8").splitlines()]
    assert [(r["content"], r["opentrain"]["line"]) for r in rows] == [
        ("half \ud83d emoji", 1),
        ("refused", 2),
    ]
    again = await cli("bulk", str(failures), "--dry-run", server=server)
    assert "line 1: content is not valid Unicode text" in again.out + again.err


async def test_a_server_error_with_half_an_emoji_is_written_to_a_csv_failures_file(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The server's error text is the server's to say: half an emoji in it went into
    the row's ``opentrain.error`` column and the write raised the same way.  (On main
    orjson refused such a body, so the text never got there; the stdlib fallback of
    this branch reads it, and without the file's escaping this failed.)"""
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(f"conversationId,content\n{conv},refused\n")
    server.script("POST /messages", status=404, error="gone \ud83d")
    failures = tmp_path / "failures.csv"
    result = await cli("bulk", str(job), "--failures", str(failures), server=server)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    text = failures.read_text("utf-8")
    assert "refused" in text
    assert "gone \\ud83d" in text
