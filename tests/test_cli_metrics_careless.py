"""``bulk --metrics-port`` and ``--log-format json`` as a careless operator uses them:
junk addresses, an unbracketed IPv6 address, IPv6 in brackets, the prometheus extra
missing; JSON log lines when the job fails.  One line and an exit code, never a
traceback, and nothing sent when the endpoint cannot be served."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from opentrain_async._cli._input import InputError
from opentrain_async._cli._metrics import parse_address
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, start_cli, write_jsonl

pytest.importorskip("opentelemetry.exporter.prometheus")

_SERVING = re.compile(rb"serving Prometheus metrics on (http://\S+/metrics)")


@pytest.mark.parametrize(
    "junk",
    ["abc", "99999", "host:", "-1", ":", "[::1]", "::1", "127.0.0.1:9464:1", "9_464", "٩٤٦٤"],
)
def test_junk_addresses_are_named(junk: str) -> None:
    """Junk, an IPv6 address without brackets (``::1`` is not port 1 on host ``:``),
    and the digits ``int()`` also takes (``9_464``, Arabic-Indic) are refused by name."""
    with pytest.raises(InputError, match="--metrics-port"):
        parse_address(junk)


@pytest.mark.parametrize("junk", ["abc", "99999", "host:", "::1"])
async def test_a_junk_address_is_one_line_exit_2_nothing_sent(
    server: FakeOpenTrain, tmp_path: Path, junk: str
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    result = await run_cli(
        "bulk", str(job), "--no-journal", "--metrics-port", junk, env=cli_env(server, tmp_path)
    )
    assert result.code == 2, result.err
    assert "--metrics-port" in result.err
    assert_one_line_error(result)
    assert result.out == ""
    assert server.stats()["sends"] == 0


async def test_without_the_prometheus_extra_it_says_what_to_install(
    server: FakeOpenTrain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter not installed: exit 3, one line naming the extra, nothing sent."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.prometheus", None)
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "x"}])
    result = await run_cli(
        "bulk", str(job), "--no-journal", "--metrics-port", "0", env=cli_env(server, tmp_path)
    )
    assert result.code == 3, result.err
    assert "opentrain-async[prometheus]" in result.err
    assert_one_line_error(result)
    assert server.stats()["sends"] == 0


@pytest.mark.process
async def test_ipv6_in_brackets_is_served_and_stdout_stays_clean(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """``--metrics-port [::1]:0 --json``: the endpoint answers on IPv6 and prints its
    URL in brackets on stderr; stdout holds the JSON summary alone (for piping)."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(3)]
    )
    proc = await start_cli(
        "bulk", str(job), "--no-journal", "--json", "--metrics-port", "[::1]:0",
        env=cli_env(server, tmp_path),
    )  # fmt: skip
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 60)
    found = _SERVING.search(line)
    assert found is not None, line
    url = found.group(1).decode()
    assert url.startswith("http://[::1]:")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["sent"] == 3


async def test_json_log_lines_when_lines_fail(server: FakeOpenTrain, tmp_path: Path) -> None:
    """``-vv --log-format json`` on a job whose lines fail, with a server whose request
    ids hold quotes and backslashes and whose error text holds control characters: every
    log record on stderr is one valid JSON object (failures and retries included); the
    only other lines are the progress lines and the final error line."""
    conv = server.add_conversation()
    server.script(
        "POST /messages",
        status=400,
        error='bad "line"\n\x1b[2J',
        headers={"X-Request-Id": 'id"\\q'},
        times=2,
    )
    server.script("GET /auth/me", status=503, error="busy", headers={"Retry-After": "0.01"})
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m{i}"} for i in range(4)]
    )
    result = await run_cli(
        "bulk", str(job), "--no-journal", "--on-failure", "continue", "-vv",
        "--log-format", "json", env=cli_env(server, tmp_path),
    )  # fmt: skip
    assert result.code != 0, result.err
    lines = result.err.splitlines()
    others = [line for line in lines if not line.startswith("{")]
    assert all(line.startswith(("progress: ", "opentrain-async: ")) for line in others), others
    records = [line for line in lines if line.startswith("{")]
    parsed = [json.loads(line) for line in records]
    assert len([r for r in parsed if "duration_ms" in r]) == server.stats()["requests"]
    assert any(r["level"] == "INFO" and r.get("reason") for r in parsed)  # the retry
    assert any(r.get("status") == 400 for r in parsed)
    assert "\x1b" not in result.err
