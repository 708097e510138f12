"""``python -m tests.frozen_sender WHERE K ARGS...``: the CLI (``opentrain-async ARGS``)
that stops itself with SIGSTOP on its K-th POST, at a chosen point of the send path.

A SIGSTOP from outside lands wherever the process happens to be; this puts it exactly at
the point under test, so the paused-runner tests are deterministic:

* ``request-start``: right after the Redis journal's check when aiohttp starts the
  request, before it has a connection or wrote a byte (where a stop used to let the
  request out on waking);
* ``body-write``: right after the last check, as aiohttp hands the request to the
  socket (the window fencing cannot close: the server has no fencing token).

The hook is appended after the store's own hooks, so the store's check runs first.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import aiohttp

from opentrain_async._cli import _journal_redis
from opentrain_async._cli import main as cli_main


def _install(where: str, k: int) -> None:
    original = _journal_redis.RedisJournalStore.trace_config
    posts = 0

    async def stop_on_kth_post(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
        nonlocal posts
        if params.method != "POST":
            return
        posts += 1
        if posts == k:
            os.kill(os.getpid(), signal.SIGSTOP)  # stopped here until SIGCONT

    def trace_config(self: _journal_redis.RedisJournalStore) -> aiohttp.TraceConfig:
        config = original(self)
        hooks = {
            "request-start": config.on_request_start,
            "body-write": config.on_request_chunk_sent,
        }
        hooks[where].append(stop_on_kth_post)
        return config

    _journal_redis.RedisJournalStore.trace_config = trace_config  # type: ignore[method-assign]


if __name__ == "__main__":
    _install(sys.argv[1], int(sys.argv[2]))
    sys.exit(cli_main(sys.argv[3:]))
