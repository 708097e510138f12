"""``--failures`` naming a device or a FIFO is refused before anything is sent.

``--failures /dev/null`` ("I don't want the file") is what a careless operator writes.
The failures file is written beside itself and renamed over the path, and a run with no
failure removes an old one: run as root (a job in a container), a clean run deleted
``/dev/null`` and a run with failures replaced it with a JSONL file.  Now anything but
a regular file (or a path not there yet) is a usage error, exit 2, and left as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, write_jsonl
from .device_nodes import device_twin


@pytest.mark.parametrize("kind", ["device", "fifo"])
@pytest.mark.parametrize("failing", [False, True], ids=["clean-run", "with-failures"])
async def test_failures_into_a_device_or_fifo_is_refused_and_left_alone(
    kind: str, failing: bool, server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    target = tmp_path / "sink"
    if kind == "device":
        device_twin(target)
    else:
        os.mkfifo(target)
    before = os.stat(target).st_mode
    records = [{"conversationId": conv, "content": "fine"}]
    if failing:
        records.append({"conversationId": "conv_9999", "content": "no such conversation"})
    job = write_jsonl(tmp_path / "job.jsonl", records)
    env = cli_env(server, tmp_path)
    result = await run_cli("bulk", str(job), "--failures", str(target), env=env)
    assert result.code == 2, result.err
    assert_one_line_error(result)
    assert "not a regular file" in result.err
    assert server.stats()["sends"] == 0
    assert os.stat(target).st_mode == before
