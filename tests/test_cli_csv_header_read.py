"""A CSV job whose header does not name the fields as the job needs: the error shows the
header it read (never a message) and says why it missed them: ``;`` separators (Excel
in many locales), names with spaces around them.  It said only "missing conversationId,
content", of a header that visibly had both."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli

SECRET = "the launch is on Friday"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            f"conversationId;content;key\nc1;{SECRET};k1\n",
            "missing conversationId, content; the header read: 'conversationId;content;key' "
            "(it looks separated by ';', not commas: save it as comma-separated)",
        ),
        (
            f"conversationId, content\nc1, {SECRET}\n",
            "missing content; the header read: 'conversationId', ' content' "
            "(the names must not have spaces around them)",
        ),
        (
            f"conversation_id,text\nc1,{SECRET}\n",
            "missing conversationId, content; the header read: 'conversation_id', 'text'",
        ),
        (
            f"c1,{SECRET}\n",
            "missing conversationId, content; its first line (not shown) names none of "
            "them: is the header missing?",
        ),
    ],
)
async def test_the_header_read_is_shown_without_any_message(
    server: FakeOpenTrain, tmp_path: Path, text: str, says: str
) -> None:
    job = tmp_path / "job.csv"
    job.write_text(text, encoding="utf-8")
    result = await run_cli("bulk", str(job), "--no-journal", env=cli_env(server, tmp_path))
    assert result.code == 2, result.err
    assert_one_line_error(result)
    assert says in result.err
    assert SECRET not in result.err + result.out
    assert server.stats()["requests"] == 0
