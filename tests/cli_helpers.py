"""Running the CLI as a real subprocess against a FakeOpenTrain served by the test's loop."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from opentrain_async.testing import FakeOpenTrain

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli_env(server: FakeOpenTrain | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with the fake server's token and URL, and no real CLI config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OT_API_TOKEN", "OPENTRAIN_API_TOKEN", "OT_API_BASE_URL")
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONWARNINGS"] = "error"
    if server is not None:
        env["OT_API_TOKEN"] = server.token
        env["OT_API_BASE_URL"] = server.base_url
    env.update(extra)
    return env


async def start_cli(
    *args: str, env: Mapping[str, str], cwd: Path = ROOT
) -> asyncio.subprocess.Process:
    """Start ``python -m opentrain_async ARGS`` (from any ``cwd``: PYTHONPATH finds it)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opentrain_async",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )


async def run_cli(
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float = 60.0,
    cwd: Path = ROOT,
) -> Result:
    """Run ``python -m opentrain_async ARGS`` to completion."""
    proc = await start_cli(*args, env=env, cwd=cwd)
    data = stdin.encode() if stdin is not None else b""
    out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_one_line_error(result: Result) -> None:
    """Errors are one clear line on stderr: no traceback."""
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("opentrain-async: error: ")


def journal_header(job: Path, server: FakeOpenTrain | None = None) -> str:
    """The header line a journal for ``job`` starts with (to write journals by hand)."""
    record = {
        "journal": "opentrain-async",
        "format": 2,
        "input": {
            "path": str(job.resolve()),
            "apiRoot": None if server is None else server.base_url + "/api/public/v1",
        },
        "at": 0.0,
    }
    return json.dumps(record) + "\n"
