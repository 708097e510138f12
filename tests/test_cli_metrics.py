"""``bulk --metrics-port``: Prometheus scrapes the job's metrics while it runs; and
``--log-format json``."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from opentrain_async._cli._input import InputError
from opentrain_async._cli._metrics import parse_address
from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import cli_env, run_cli, start_cli, write_jsonl

pytest.importorskip("opentelemetry.exporter.prometheus")

_SERVING = re.compile(rb"serving Prometheus metrics on (http://\S+/metrics)")


def _samples(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (any labels) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.process
async def test_metrics_are_scraped_while_the_job_runs(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """50 messages into a 10/s bucket take 5 s at least; meanwhile the endpoint shows
    outcomes, requests and the pacer, and the job is still running when it does."""
    server.set_rate_limit(TokenBucket(rate=10, burst=1))
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(50)]
    )
    env = cli_env(server, tmp_path)
    proc = await start_cli(
        "bulk", str(job), "--no-journal", "--metrics-port", "127.0.0.1:0", env=env
    )
    assert proc.stderr is not None
    url = None
    while url is None:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, "the CLI ended without serving metrics"
        found = _SERVING.search(line)
        url = found.group(1).decode() if found else None
    scraped = ""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):  # until a few outcomes are in (0.05 s apart, 30 s at most)
            async with session.get(url) as response:
                assert response.status == 200
                scraped = await response.text()
            if _samples(scraped, "opentrain_outcomes_total") >= 3:
                break
            await asyncio.sleep(0.05)
    running = proc.returncode is None
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert running  # scraped during the job, not after it
    assert _samples(scraped, "opentrain_outcomes_total") >= 3
    assert 'opentrain_outcome="sent"' in scraped
    assert _samples(scraped, "opentrain_requests_total") >= 3
    assert "http_client_request_duration_seconds_count" in scraped
    assert "opentrain_pacer_paused" in scraped
    assert server.token not in scraped
    assert len(server.messages(conv)) == 50


async def test_metrics_port_in_use_is_one_line(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A port already taken: exit 3 with one line naming the flag, no traceback."""
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": "c", "content": "x"}])
    try:
        result = await run_cli(
            "bulk",
            str(job),
            "--no-journal",
            "--metrics-port",
            f"127.0.0.1:{port}",
            env=cli_env(server, tmp_path),
        )
    finally:
        blocker.close()
        await blocker.wait_closed()
    assert result.code == 3, result.err
    assert "--metrics-port" in result.err
    assert "Traceback" not in result.err
    assert server.stats()["sends"] == 0


def test_metrics_addresses() -> None:
    """PORT listens everywhere, HOST:PORT (IPv6 in brackets) where asked; junk is named."""
    assert parse_address("9464") == ("0.0.0.0", 9464)  # noqa: S104
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(InputError, match="--metrics-port"):
        parse_address("nine")
    with pytest.raises(InputError, match="0-65535"):
        parse_address("70000")


async def test_log_format_json_is_one_object_per_line(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """``-vv --log-format json``: every stderr log line is a JSON object, and each request
    line carries method, path, status, duration_ms, request_id and attempt as keys."""
    conv = server.add_conversation()
    result = await run_cli(
        "send", "-vv", "--log-format", "json", conv, "json logs", env=cli_env(server, tmp_path)
    )
    assert result.code == 0, result.err
    records = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    requests = [r for r in records if "duration_ms" in r]
    assert len(requests) == 1
    (request,) = requests
    assert request["level"] == "DEBUG"
    assert (request["method"], request["path"], request["status"], request["attempt"]) == (
        "POST",
        "/messages",
        201,
        1,
    )
    assert request["request_id"] == server.sends[0].request_id
    assert server.token not in result.err
    assert "json logs" not in result.err
