"""The cursor file's lock against what an operator, a careless bot and its environment
do after it was taken: a worker forked by the bot, the cursor's symlink pointed
elsewhere while a bot runs, a loop left by a bare ``break`` with its listener kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

import opentrain_async
from opentrain_async import ConfigurationError, JSONFileCursorStore, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .test_listen_lock import WAIT, _first_message, _holding
from .test_listen_lock_hostile import _refused


@pytest.fixture
def two(server: FakeOpenTrain) -> None:
    """Two incoming messages, "one" then "two"."""
    conv = server.add_conversation()
    for text in ("one", "two"):
        server.add_incoming_message(conv, text)


_FORKING_BOT = """
import asyncio, os, sys, time
from opentrain_async import OpenTrainClient

async def main() -> None:
    async with OpenTrainClient() as client, client.listen(
        store=sys.argv[1], start="beginning"
    ) as messages:
        async for message in messages:
            ready, said = os.pipe()
            worker = os.fork()
            if worker == 0:  # a worker that outlives the bot
                os.write(said, b"x")
                time.sleep(WAIT)
                os._exit(0)
            os.read(ready, 1)  # the worker runs: it has done whatever fork() does
            with open(sys.argv[2], "w") as pid_file:
                pid_file.write(str(worker))
            break  # "one" finished; the bot exits cleanly

asyncio.run(main())
"""


@pytest.mark.process
async def test_a_worker_forked_by_the_bot_does_not_keep_its_cursor_file(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """A bot forks a worker while it listens (``multiprocessing``, a ``fork()`` of its
    own), then stops.  The worker shares the lock file's open description, and an
    ``flock`` lasts until its last copy closes.  Was: the worker held the cursor file
    after the bot was gone, and the next bot waited for it (forever by default)."""
    cursor = tmp_path / "cursor.json"
    env = {
        **os.environ,
        "OT_API_TOKEN": server.token,
        "OT_API_BASE_URL": server.base_url,
        "PYTHONPATH": str(Path(opentrain_async.__file__).parent.parent),
    }
    script = _FORKING_BOT.replace("WAIT", repr(WAIT))
    pid_file = tmp_path / "worker.pid"
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(cursor), str(pid_file), env=env
    )
    assert await asyncio.wait_for(bot.wait(), WAIT) == 0
    worker = int(pid_file.read_text())
    try:
        # The bot is gone, its worker still runs: the next bot starts at once.
        assert await _first_message(client, JSONFileCursorStore(cursor, lock_timeout=0)) == "two"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


async def test_a_symlink_pointed_elsewhere_keeps_the_new_bot_waiting(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """The cursor path is a symlink; while the old bot runs, the operator points it at
    another file (a new volume, a copy).  The old bot saves where the link points now,
    so the new bot on the same link must still wait for it.  Was: the new bot locked
    only the new target and ran beside the old one, both saving into it."""
    first, second, link = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "cursor.json"
    link.symlink_to(first)
    async with _holding(client, link):
        link.unlink()
        link.symlink_to(second)
        error = await _refused(client, link)
    assert "still in use by another listener" in str(error)
    # The old bot is gone: the new one starts at once, from where the old one saved
    # ("one" finished, into the file the link names now).
    assert await _first_message(client, JSONFileCursorStore(link, lock_timeout=0)) == "two"
    assert not first.exists()
    assert (tmp_path / "cursor.json.lock").exists()  # the link's own lock, beside it


@pytest.mark.xfail(
    strict=True,
    raises=ConfigurationError,
    reason="a bare break leaves the listener open while it is referenced (documented)",
)
async def test_a_bare_break_with_the_listener_kept_lets_the_next_one_in(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """``async for m in messages: break`` without ``async with`` leaves the engine
    suspended, holding the file, until ``messages`` is closed or collected.  A second
    listen() in the same process waits for it: forever with no ``lock_timeout``.
    Nothing in the library sees the ``break``; the docs say to use ``async with``."""
    cursor = tmp_path / "cursor.json"
    messages = client.listen(store=cursor, start="beginning")
    async for _ in messages:
        break
    assert await _first_message(client, cursor, lock_timeout=5) == "one"
    await messages.aclose()
