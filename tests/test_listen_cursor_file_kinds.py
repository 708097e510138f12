"""A cursor file that is not a regular file is refused, never read from or replaced.

``OT_CURSOR_FILE=/dev/null`` ("don't keep a position") is what a careless operator
writes.  The cursor store read the device (a FIFO: blocked forever in ``open``), then
saved by ``os.replace`` over it: run as root, as bots in containers are, the bot
replaced the container's ``/dev/null`` with a JSON file, and kept no position either.
The job journal refuses these; now the cursor file does too, with a
``ConfigurationError`` naming it, before any message is handled.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, JSONFileCursorStore, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .device_nodes import device_twin


async def test_a_device_as_cursor_file_is_refused_and_left_a_device(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    device = device_twin(tmp_path / "null")

    async def first_message() -> None:
        async with client.listen(store=device) as messages:
            async for _ in messages:  # pragma: no cover - refused before
                break

    with pytest.raises(ConfigurationError, match="not a regular file"):
        await first_message()
    assert stat.S_ISCHR(os.stat(device).st_mode)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        await JSONFileCursorStore(device).save("5")
    assert stat.S_ISCHR(os.stat(device).st_mode)


async def test_a_fifo_as_cursor_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "cursor.fifo"
    os.mkfifo(fifo)
    store = JSONFileCursorStore(fifo)
    try:
        with pytest.raises(ConfigurationError, match="not a regular file"):
            await asyncio.wait_for(store.load(), 10)  # a deadline, not a pause
        with pytest.raises(ConfigurationError, match="not a regular file"):
            await store.save("5")
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    finally:  # a reader blocked in open() (the bug) is released by a writer
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if _has_reader(fifo) else None
        if fd is not None:
            os.close(fd)


def _has_reader(fifo: Path) -> bool:
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody reads it
        return False
    return True


async def test_a_directory_as_cursor_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a regular file"):
        await JSONFileCursorStore(tmp_path).load()


async def test_a_cursor_file_that_cannot_be_saved_is_a_configuration_error(
    client: OpenTrainClient, tmp_path: Path
) -> None:
    """A read-only volume, or a path under a file: the bot learns it at start, as an
    OpenTrainError naming the file, not as a bare OSError from its loop."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = blocker / "cursor.json"

    async def first_message() -> None:
        async with client.listen(store=store) as messages:
            async for _ in messages:  # pragma: no cover - refused before
                break

    with pytest.raises(ConfigurationError, match="cursor file"):
        await first_message()
    with pytest.raises(ConfigurationError, match="cursor file"):
        await JSONFileCursorStore(store).save("5")


async def test_a_long_cursor_file_name_is_saved(tmp_path: Path) -> None:
    """A name the file system takes was saved through a temporary file named after it
    plus a prefix and suffix: too long, a bare OSError.  The temporary name is cut."""
    store = JSONFileCursorStore(tmp_path / ("c" * 250 + ".json"))
    await store.save("5")
    assert await store.load() == "5"
