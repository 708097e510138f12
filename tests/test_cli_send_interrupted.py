"""``send`` stopped by SIGINT or SIGTERM while its POST is on the wire, on a real
subprocess: the message may have been delivered, and the command must say so."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, start_cli


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.process
async def test_a_signal_during_a_send_says_the_outcome_is_unknown(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The server stored the message and stalls its answer; the user gives up.  The
    command said only "interrupted by SIGINT", so sending it again looked safe and
    posted it twice.  Now it says the message may have been delivered and how to look."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        server.script("POST /messages", delay=120, after_commit=True)
        proc = await start_cli("send", conv, "pay day moved", env=cli_env(server, tmp_path))
        deadline = time.monotonic() + 30
        while not [r for r in server.requests if r.method == "POST"]:
            assert time.monotonic() < deadline, "the send never reached the server"
            assert proc.returncode is None
            await asyncio.sleep(0.01)
        proc.send_signal(signum)
        _, raw = await asyncio.wait_for(proc.communicate(), 20)
        err = raw.decode()
        assert proc.returncode == 128 + signum, err
        assert "Traceback" not in err, err
        assert f"interrupted by {signum.name} while sending to {conv}" in err
        assert "may or may not have been delivered" in err
        assert f"messages {conv}" in err
