"""Two runs of one job's content on one machine, one journaling to a file and the other
to Redis: the second is refused, as two file-journaled runs are.

The README: "two runs of the same content never run at once".  A file-journaled run
takes a lock named by the content; a Redis-journaled run held only its lease, named by
``?job=``, so the default ``bulk job.jsonl`` and ``bulk job.jsonl --journal
redis://...?job=x`` started together on one machine (or two Redis runs under two job
names) each sent every input: every message twice.  Across machines a file journal and
a Redis one cannot see each other (the README says so); on one machine they now do.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import Result, assert_one_line_error, cli_env, run_cli, start_cli, write_jsonl
from .redis_server import RedisServer
from .waiting import until

pytestmark = pytest.mark.process  # two real runs: the lock is held by a process


@pytest.mark.parametrize(
    ("first_journal", "second_journal"),
    [
        ("", "redis:?job=batch7"),  # the default file journal, then Redis
        ("redis:?job=batch7", ""),  # Redis, then the default file journal
        ("redis:?job=batch7", "redis:?job=batch-7"),  # Redis under two job names
    ],
    ids=["file-then-redis", "redis-then-file", "two-redis-names"],
)
async def test_a_file_and_a_redis_run_of_one_job_never_run_at_once(
    first_journal: str, second_journal: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The first run, held still mid-job; the second, of the same content under
    another journal, exits 2 and sends nothing; the first finishes: all once."""
    n = 60

    def journal_args(spec: str) -> list[str]:
        if not spec:
            return []
        return ["--journal", redis_server.url + spec.removeprefix("redis:")]

    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=100, burst=2))
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": conv, "content": f"notice {i}"} for i in range(n)],
        )
        env = cli_env(server, tmp_path, HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "s"))
        first = await start_cli(
            "bulk", str(job), *journal_args(first_journal), "--json", env=env, cwd=tmp_path
        )
        try:
            await until(lambda: server.stats()["committed"] >= 3, "the first run to send")
            first.send_signal(signal.SIGSTOP)  # alive, mid-job, while the second starts
            # (No count of sends here: a request the first run wrote before SIGSTOP may
            # reach the server meanwhile.  Any input the second run sent would show below
            # as a duplicate, since the first run sends every input it has not journaled.)
            second = await run_cli(
                "bulk", str(job), *journal_args(second_journal), env=env, cwd=tmp_path
            )
            assert second.code == 2, second.err
            assert_one_line_error(second)
            assert "being sent by another run" in second.err
            assert f"pid {first.pid}" in second.err
        finally:  # the first run ends (and its pipes close) whatever failed above
            first.send_signal(signal.SIGCONT)
            out, err = await asyncio.wait_for(first.communicate(), 60)
        done = Result(first.returncode or 0, out.decode(), err.decode())
        assert done.code == 0, done.err
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (n, 0)
