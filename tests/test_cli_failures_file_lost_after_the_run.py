"""The ``--failures`` file cannot be written once the sends are done (its disk filled
up, or its directory was removed meanwhile; it was checked writable before the first
send): the run names the file it could not write and where the failures are, and exits
1 (some inputs not delivered), not 2 (a usage error) with a bare "I/O error"."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, until_committed, write_jsonl


async def test_a_failures_file_that_cannot_be_written_after_the_run_is_named(
    tmp_path: Path,
) -> None:
    """Its directory removed mid-run: exit 2 (a usage error, after 40 deliveries) and
    "I/O error (.../out/.failures.jsonl.p16otx0v): No such file or directory", naming
    a temporary file (a full 8 KiB tmpfs, tried by hand: "I/O error: No space left on
    device", no file named at all).  Now: the file named, where the failures still
    are, exit 1 (some inputs not delivered)."""
    async with FakeOpenTrain(latency=0.01) as server:
        conv = server.add_conversation()
        records = [{"conversationId": conv, "content": f"notice {i}"} for i in range(40)]
        records.append({"conversationId": "conv_gone", "content": "lost"})
        job = write_jsonl(tmp_path / "job.jsonl", records)
        out_dir = tmp_path / "out"
        out_dir.mkdir()
        failures = out_dir / "failures.jsonl"
        env = cli_env(server, tmp_path, XDG_STATE_HOME=str(tmp_path / "state"))
        args = ("bulk", str(job), "--failures", str(failures), "--concurrency", "1", "--json")
        run = asyncio.ensure_future(run_cli(*args, env=env, cwd=tmp_path))
        await until_committed(server, 5, run)
        shutil.rmtree(out_dir)
        result = await asyncio.wait_for(run, 60)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert f"could not write --failures {failures}" in result.err
    summary = result.json()
    assert (summary["delivered"], summary["failed"]) == (40, 1)
    assert summary["journal"] in result.err  # where every failure still is
    assert not failures.exists()
