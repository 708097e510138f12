"""Adversary round adv3: a real ``bulk`` process halted by a quota 429 (hint past
``max_retry_after``) while sends of the same conversations wait at the pacer's pause,
then SIGTERM or kill -9, then the same command again with its journal (file or
Redis) once the quota is back: every line delivered once, each conversation in order."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, start_cli, write_jsonl
from .redis_server import RedisServer
from .test_bulk_halt_resume import _QuotaAfter

CONVERSATIONS = 8
PARTS = 5


def interleaved_job(
    server: FakeOpenTrain, path: Path, conversations: int = CONVERSATIONS, parts: int = PARTS
) -> tuple[list[str], Path]:
    """A job file of ``parts`` parts for each of ``conversations`` new conversations,
    their parts interleaved (part 0 of each, then part 1...)."""
    convs = [server.add_conversation() for _ in range(conversations)]
    lines = [{"conversationId": c, "content": f"{c} part {p}"} for p in range(parts) for c in convs]
    return convs, write_jsonl(path, lines)


def assert_each_part_once_in_order(
    server: FakeOpenTrain, convs: list[str], parts: int = PARTS
) -> None:
    """Every conversation holds its parts once each, in the order written."""
    for conv in convs:
        stored = [m["content"] for m in server.messages(conv)]
        assert stored == [f"{conv} part {p}" for p in range(parts)], stored


@pytest.mark.process
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
@pytest.mark.parametrize("store", ["file", "redis"])
async def test_a_signal_during_a_halt_then_the_rerun_sends_each_line_once(
    server: FakeOpenTrain,
    tmp_path: Path,
    sig: signal.Signals,
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    convs, job = interleaved_job(server, tmp_path / "job.jsonl")
    if store == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        journal = f"{redis_server.url}?job=adv3-{sig.name}"
    else:
        journal = str(tmp_path / "job.journal")
    env = cli_env(server, tmp_path)
    quota = _QuotaAfter(admitted=13)
    server.set_rate_limit(quota)  # type: ignore[arg-type]
    process = await start_cli("bulk", str(job), "--journal", journal, "--grace", "1", env=env)
    try:
        while not quota.refused:  # halted: the rest wait at the pacer's pause
            await asyncio.sleep(0.01)
            assert process.returncode is None
    finally:
        process.send_signal(sig)
        await process.wait()
    assert quota.refused < CONVERSATIONS, quota.refused  # the rest not attempted
    server.set_rate_limit(None)
    again = await run_cli("bulk", str(job), "--journal", journal, "--json", env=env)
    assert again.code == 0, again.err
    assert server.stats()["duplicates"] == 0
    assert_each_part_once_in_order(server, convs)


@pytest.mark.process
async def test_the_failures_of_a_halted_run_fed_back_then_the_job_again(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A careless user: the run halted by the quota is stopped (SIGTERM), its
    ``--failures`` file is fed back as a job of its own (default journals), then the
    original job is run again, then the failures file once more: every line delivered
    once, each conversation in order."""
    convs, job = interleaved_job(server, tmp_path / "job.jsonl")
    failures = tmp_path / "failures.jsonl"
    env = cli_env(server, tmp_path, HOME=str(tmp_path / "home"))
    quota = _QuotaAfter(admitted=13)
    server.set_rate_limit(quota)  # type: ignore[arg-type]
    process = await start_cli(
        "bulk", str(job), "--failures", str(failures), "--grace", "1", env=env
    )
    try:
        while not quota.refused:
            await asyncio.sleep(0.01)
            assert process.returncode is None
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    server.set_rate_limit(None)
    committed = server.stats()["committed"]
    rows = [json.loads(line) for line in failures.read_text().splitlines()]
    unknown = [r for r in rows if r["opentrain"]["reason"] == "delivery_unknown"]
    fed = await run_cli("bulk", str(failures), "--json", env=env)
    if unknown:
        # Lines cut at the pacer after they were journaled as started are listed as
        # unknown (tests/test_cli_halt_accounting.py): fed back under another journal,
        # the file is refused whole, nothing sent.
        assert fed.code == 2, fed.err
        assert server.stats()["committed"] == committed
    else:  # SIGTERM came before any was started: the rows are plain failures, sent
        assert fed.code == 0, fed.err
        assert server.stats()["committed"] == committed + len(rows)
    again = await run_cli("bulk", str(job), "--json", env=env)
    assert again.code == 0, again.err
    fed_again = await run_cli("bulk", str(failures), "--json", env=env)  # after the rerun
    assert fed_again.code in (0, 2), fed_again.err
    assert server.stats()["duplicates"] == 0
    assert_each_part_once_in_order(server, convs)
