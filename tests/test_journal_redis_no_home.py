"""A Redis-journaled run needs no HOME: without a per-user directory for the job's content
lock (a container with no HOME and a UID without a passwd entry, as OpenShift runs),
it goes on with its lease alone, as before the content lock, instead of a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl
from .redis_server import RedisServer


async def test_a_redis_run_without_a_home_runs_on_its_lease_alone(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "hi"}])
        url = redis_server.url + "?job=nohome"
        env = cli_env(server, tmp_path)
        env.pop("XDG_STATE_HOME", None)
        result = await run_cli("bulk", str(job), "--journal", url, env=env)
        assert result.code == 0, result.err
        assert server.stats()["committed"] == 1
