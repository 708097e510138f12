"""A ``bulk`` run whose default journal cannot be created (a read-only HOME in a
container, an ``XDG_STATE_HOME`` that is not a directory): it said only ``I/O error
(/home/app/.local): Permission denied``, not what the directory was for nor how to run
the job.  Now it names the default journal's directory and the ways out
(``XDG_STATE_HOME``, ``--journal``), exit 2 before any send; with ``--journal`` the
same environment runs."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl


async def test_an_unwritable_state_directory_names_the_default_journal_and_the_way_out(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "hi"}])
    blocker = tmp_path / "state-is-a-file"
    blocker.write_text("")  # mkdir under it fails for root too (a read-only HOME's stand-in)
    env = cli_env(server, tmp_path, XDG_STATE_HOME=str(blocker / "state"))
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 2, result.err
    assert_one_line_error(result)
    assert "default journal" in result.err
    assert "XDG_STATE_HOME" in result.err
    assert "--journal" in result.err
    assert server.stats()["sends"] == 0
    explicit = await run_cli("bulk", str(job), "--journal", str(tmp_path / "j"), env=env)
    assert explicit.code == 0, explicit.err
    assert server.stats()["committed"] == 1
