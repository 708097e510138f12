"""A ``--failures`` file fed back under another journal never resends an unknown outcome.

The README: "a ``--failures`` file fed back, then the original rerun, sends nothing
twice".  The default journals of one user are one ledger, so a failures file of a
file-journaled job fed back is checked against it.  A job journaled in Redis (or run
under ``--journal PATH``) is not in that ledger: its failures file fed back under a new
job name, the default journal or ``--no-journal`` sent the message whose outcome was
unknown again, and it had been delivered.  The row itself says so
(``"opentrain": {"reason": "delivery_unknown"}``): such a row is now sent only by the
journal that knows it (read back first), else the run is refused naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain, Fault

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl
from .redis_server import RedisServer


@pytest.mark.parametrize("fed_back_with", ["another-redis-job", "default", "no-journal", "path"])
async def test_an_unknown_row_fed_back_under_another_journal_is_refused(
    fed_back_with: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """First run on Redis: one send reset after commit into an unreadable conversation
    (unknown), one to a missing conversation.  The failures file fed back under any
    other journal: exit 2, one line naming the row, nothing sent.  Under the job's own
    journal it is read back, not resent; with the unknown row removed, the fixed row is
    sent."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        hidden = server.add_conversation(readable=False)  # read-back cannot settle it
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [
                {"conversationId": hidden, "content": "maybe delivered"},
                {"conversationId": "conv_9999", "content": "wrong conversation"},
                {"conversationId": conv, "content": "fine"},
            ],
        )
        env = cli_env(server, tmp_path)
        server.inject_fault(Fault.RESET_AFTER_COMMIT, count=1)
        failed = tmp_path / "failed.jsonl"
        url = f"{redis_server.url}?job=b7"
        first = await run_cli(
            "bulk", str(job), "--concurrency", "1", "--journal", url, "--failures", str(failed),
            env=env,
        )  # fmt: skip
        assert first.code == 1, first.err
        assert len(server.messages(hidden)) == 1  # delivered, though the run cannot tell

        elsewhere = {
            "another-redis-job": ["--journal", f"{redis_server.url}?job=b7-retry"],
            "default": [],
            "no-journal": ["--no-journal"],
            "path": ["--journal", str(tmp_path / "retry.journal")],
        }[fed_back_with]
        sends = server.stats()["sends"]
        dry = await run_cli("bulk", str(failed), *elsewhere, "--dry-run", "--json", env=env)
        assert dry.code == 2, dry.err
        assert dry.json()["unknownRows"] == [1]
        fed = await run_cli("bulk", str(failed), *elsewhere, env=env)
        assert fed.code == 2, fed.err
        assert_one_line_error(fed)
        assert "line 1" in fed.err
        assert "delivery_unknown" in fed.err
        assert server.stats()["sends"] == sends
        assert len(server.messages(hidden)) == 1

        own = await run_cli("bulk", str(failed), "--journal", url, env=env)
        assert own.code == 1, own.err  # read back: still unknown, not resent
        assert len(server.messages(hidden)) == 1

        rows = [json.loads(line) for line in failed.read_text().splitlines()]
        fixed = [
            {**r, "conversationId": conv} for r in rows if r["opentrain"]["reason"] == "not_found"
        ]
        write_jsonl(failed, fixed)
        sent = await run_cli("bulk", str(failed), *elsewhere, env=env)
        assert sent.code == 0, sent.err
        assert len(server.messages(conv)) == 2
        assert server.stats()["duplicates"] == 0
