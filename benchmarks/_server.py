"""Start the fake OpenTrain server in its own process, as the benchmarks need it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

API = "/api/public/v1"
"""The public API's path prefix on the fake server (every runner's URLs)."""


class ServerProcess:
    """A running ``python -m opentrain_async.testing`` on a loopback port."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str, token: str) -> None:
        self.proc = proc
        self.base_url = base_url
        self.token = token

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/__fake__/stats", timeout=10) as response:
            data: dict[str, Any] = json.load(response)
        return data


@contextmanager
def fake_server(args: Sequence[str]) -> Iterator[ServerProcess]:
    """Run the fake server with ``args`` until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "opentrain_async.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if len(line) != 3 or line[0] != "READY":
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield ServerProcess(proc, line[1], line[2])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()  # the READY line's pipe (else a ResourceWarning)
