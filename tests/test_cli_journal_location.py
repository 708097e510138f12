"""Where the journal is: said at the start of every run (the default one is per user
and machine), and a --journal that is a dangling symlink refused with the true reason."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli, write_jsonl


async def test_a_dangling_symlink_journal_is_named_as_such(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """It said "created by another run at the same time"; now it says what it is."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    link = tmp_path / "job.journal"
    link.symlink_to(tmp_path / "gone" / "target.journal")
    result = await cli("bulk", str(job), "--journal", str(link), server=server)
    assert result.code == 2, result.err
    assert "is a symbolic link to" in result.err
    assert "another run at the same time" not in result.err
    assert server.stats()["sends"] == 0


async def test_the_journal_is_named_at_the_start(server: FakeOpenTrain, tmp_path: Path) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    result = await cli("bulk", str(job), "--json", server=server)
    assert result.code == 0, result.err
    first = result.err.splitlines()[0]
    assert first == f"journal {result.json()['journal']} " + (
        "(the default: per user and machine; another HOME or container does not see it, "
        "pass --journal to share one)"
    )
    explicit = tmp_path / "j.journal"
    result = await cli("bulk", str(job), "--journal", str(explicit), server=server)
    assert result.err.splitlines()[0] == f"journal {explicit}"
