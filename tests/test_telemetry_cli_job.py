"""The CLI's metrics against what it did: a resumed job whose lines a journal already
settled, and the journal's commits (with the providers set up in this process, as
``--metrics-port`` does in the CLI's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl
from .telemetry_helpers import Telemetry, use_global_providers


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    yield from use_global_providers()


async def test_a_resumed_job_counts_what_it_sent(
    otel: Telemetry, server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Run a job, then run it again: the second run sends nothing (the journal knows),
    and the requests, outcomes and journal counters say what each run did."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(6)]
    )
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), env=env)
    assert first.code == 0, first.err
    sent_first = otel.total("opentrain.outcomes", **{"opentrain.outcome": "sent"})
    posts_first = otel.total("opentrain.requests", **{"http.request.method": "POST"})
    commits_first = otel.total("opentrain.journal.commits")
    records_first = otel.total("opentrain.journal.records")
    second = await run_cli("bulk", str(job), env=env)
    assert second.code == 0, second.err
    assert server.stats()["sends"] == 6
    assert sent_first == 6
    assert posts_first == 6
    assert commits_first >= 1
    assert records_first >= 6
    assert otel.total("opentrain.requests", **{"http.request.method": "POST"}) == 6
    assert otel.total("opentrain.outcomes", **{"opentrain.outcome": "sent"}) == 6, second.err
