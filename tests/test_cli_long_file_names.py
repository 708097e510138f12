"""A job file, journal or failures file with a long name (up to the file system's 255
bytes) works.  Each was written through a name built from it (the default journal adds
``-<hash>.journal``; temporary files add a dot prefix and a random suffix), which went
over the limit: the job could not run without ``--journal``, exit 2 "File name too long".
"""

from __future__ import annotations

import json
from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


async def test_a_job_file_with_a_long_name_runs_and_resumes(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / ("j" * 244 + ".jsonl"),
        [
            {"conversationId": conv, "content": "hi"},
            {"conversationId": "conv_9999", "content": "x"},
        ],
    )
    failures = tmp_path / ("f" * 244 + ".jsonl")
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--failures", str(failures), env=env)
    assert first.code == 1, first.err
    assert json.loads(failures.read_text())["opentrain"]["reason"] == "not_found"
    again = await run_cli("bulk", str(job), "--json", env=env)
    assert again.code == 1, again.err
    assert server.stats()["sends"] == 2  # the journal was found: nothing sent again
    explicit = await run_cli(
        "bulk", str(job), "--journal", str(tmp_path / ("k" * 247 + ".journal")), env=env
    )
    assert explicit.code == 1, explicit.err
