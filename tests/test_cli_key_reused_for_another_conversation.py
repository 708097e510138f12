"""A key delivered to one conversation, then reused by an edited job file for another
conversation with the same text: the run refuses to start (as for changed content), and
says what changed, instead of "with other content" about content that did not change."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli, write_jsonl


async def test_a_key_moved_to_another_conversation_is_named_as_such(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """It said "1 key(s) were sent in an earlier run with other content: 'inv-1' (line
    2)" while the content was the same: the operator compares texts and finds nothing.
    Now it says the key was sent to another conversation, and which."""
    a, b = server.add_conversation(), server.add_conversation()
    records = [
        {"conversationId": a, "content": f"invoice {i} is due", "key": f"inv-{i}"} for i in range(3)
    ]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    assert (await cli("bulk", str(job), server=server)).code == 0
    records[1] = {**records[1], "conversationId": b}
    write_jsonl(job, records)
    sends = server.stats()["sends"]
    refused = await cli("bulk", str(job), server=server)
    assert refused.code == 2, refused.err
    assert_one_line_error(refused)
    assert "to another conversation" in refused.err
    assert f"'inv-1' (line 2, sent to {a})" in refused.err
    assert "with other content" not in refused.err
    dry = await cli("bulk", str(job), "--dry-run", server=server)
    assert dry.code == 2
    assert f"key 'inv-1' was sent before to {a}" in dry.out + dry.err
    assert server.stats()["sends"] == sends


async def test_a_key_with_changed_content_still_says_other_content(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Same conversation, other text: the wording is unchanged."""
    conv = server.add_conversation()
    records = [{"conversationId": conv, "content": "invoice 0 is due", "key": "inv-0"}]
    job = write_jsonl(tmp_path / "job.jsonl", records)
    assert (await cli("bulk", str(job), server=server)).code == 0
    write_jsonl(job, [{**records[0], "content": "invoice 0 is due (corrected)"}])
    refused = await cli("bulk", str(job), server=server)
    assert refused.code == 2
    assert "with other content: 'inv-0' (line 1)" in refused.err
