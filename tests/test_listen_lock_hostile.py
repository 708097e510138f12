"""The cursor file's lock against careless operators and hostile file systems: a stale
lock file, one that cannot be created, a symlink planted where the lock goes, a
symlinked cursor, several paths to one file, a name at the file system's limit, no
``fcntl`` at all.  Each either still keeps one listener per file, or is refused with a
``ConfigurationError`` naming the file, before any message is handled.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.util
import logging
import os
import sys
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, JSONFileCursorStore, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .test_listen_lock import WAIT, _first_message, _holding


@pytest.fixture
def two(server: FakeOpenTrain) -> None:
    """Two incoming messages, "one" then "two"."""
    conv = server.add_conversation()
    for text in ("one", "two"):
        server.add_incoming_message(conv, text)


async def _refused(client: OpenTrainClient, path: Path | str) -> ConfigurationError:
    """A listener on ``path`` that must not start at once; the error it met."""
    with pytest.raises(ConfigurationError) as info:
        await asyncio.wait_for(
            _first_message(client, JSONFileCursorStore(path, lock_timeout=0)), WAIT
        )
    return info.value


async def test_a_stale_lock_file_does_not_hold_anyone(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """A lock file left by a bot that died (its holder line and all): the lock went with
    the process, the file is only a name.  The next bot starts at once."""
    cursor = tmp_path / "cursor.json"
    (tmp_path / "cursor.json.lock").write_text("pid 1 on a-pod-long-gone\n")
    assert await _first_message(client, JSONFileCursorStore(cursor, lock_timeout=0)) == "one"
    assert (tmp_path / "cursor.json.lock").read_text() == f"pid {os.getpid()} on {os.uname()[1]}\n"


async def test_a_missing_directory_is_created_for_the_lock_too(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    cursor = tmp_path / "state" / "bot" / "cursor.json"
    assert await _first_message(client, cursor) == "one"
    assert sorted(os.listdir(cursor.parent)) == ["cursor.json", "cursor.json.lock"]


async def test_a_lock_that_cannot_be_created_is_a_configuration_error(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """A directory squats the lock's name (as a read-only directory, it leaves no lock
    file to take): refused, naming the lock and the cursor file."""
    cursor = tmp_path / "cursor.json"
    (tmp_path / "cursor.json.lock").mkdir()
    error = await _refused(client, cursor)
    assert "cannot take the lock" in str(error)
    assert str(cursor) in str(error)
    assert not cursor.exists()
    # A cursor that is no regular file (OT_CURSOR_FILE=/dev/null) is refused before a
    # lock file is made beside it (as root: in /dev).
    fifo = tmp_path / "null"
    os.mkfifo(fifo)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        await asyncio.wait_for(_first_message(client, fifo), WAIT)
    assert sorted(os.listdir(tmp_path)) == ["cursor.json.lock", "null"]


async def test_a_symlink_planted_as_the_lock_is_not_followed(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """Run as root, writing the holder line through a planted link would overwrite any
    file on the machine.  The lock is opened without following links: refused."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    cursor = tmp_path / "cursor.json"
    (tmp_path / "cursor.json.lock").symlink_to(victim)
    error = await _refused(client, cursor)
    assert "cannot take the lock" in str(error)
    assert victim.read_text() == "precious\n"


async def test_a_symlinked_cursor_file_is_one_position_with_its_target(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """One bot names the link, the other the file: they exclude each other, and the
    position is saved into the target (was: the link was replaced by a file of its own,
    and a bot on the target went on from an old position)."""
    target = tmp_path / "volume" / "cursor.json"
    target.parent.mkdir()
    link = tmp_path / "cursor.json"
    link.symlink_to(target)
    async with _holding(client, link):
        error = await _refused(client, target)
        assert str(target) in str(error)
    assert link.is_symlink()
    assert await _first_message(client, target) == "two"  # went on from the link's position


@pytest.mark.parametrize("other", ["relative", "dotdot", "symlinked directory"])
async def test_two_paths_to_one_cursor_file_are_one_position(
    client: OpenTrainClient,
    tmp_path: Path,
    two: None,
    other: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cursor = tmp_path / "bot" / "cursor.json"
    cursor.parent.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "alias").symlink_to(cursor.parent)
    monkeypatch.chdir(tmp_path)
    second = {
        "relative": "bot/cursor.json",
        "dotdot": str(tmp_path / "elsewhere" / ".." / "bot" / "cursor.json"),
        "symlinked directory": str(tmp_path / "alias" / "cursor.json"),
    }[other]
    async with _holding(client, cursor):
        await _refused(client, second)
    assert await _first_message(client, second) == "two"


async def test_a_cursor_name_at_the_file_systems_limit_is_locked(
    client: OpenTrainClient, tmp_path: Path, two: None
) -> None:
    """A 255-byte name has no room for ``.lock``: the lock's name is cut and hashed."""
    cursor = tmp_path / ("c" * 250 + ".json")
    async with _holding(client, cursor):
        error = await _refused(client, cursor)
        assert "still in use" in str(error)
    (lock,) = [name for name in os.listdir(tmp_path) if name.endswith(".lock")]
    assert len(lock) <= 255


async def test_without_fcntl_the_file_is_not_locked_and_listen_still_works(
    client: OpenTrainClient, tmp_path: Path, two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no ``fcntl``: the package imports, listen() runs, nothing is locked
    (documented)."""
    from opentrain_async import _listen_lock as listen_lock

    monkeypatch.setattr(listen_lock, "fcntl", None)
    cursor = tmp_path / "cursor.json"
    async with _holding(client, cursor):
        assert await _first_message(client, JSONFileCursorStore(cursor, lock_timeout=0)) == "one"
    assert not (tmp_path / "cursor.json.lock").exists()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl: ImportError
    name = "opentrain_async._listen_lock_without_fcntl"
    spec = importlib.util.spec_from_file_location(name, listen_lock.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.fcntl is None


async def test_a_file_system_without_flock_warns_and_listens_unlocked(
    client: OpenTrainClient,
    tmp_path: Path,
    two: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ENOLCK (NFS without its lock daemon) or EOPNOTSUPP: refusing would stop a bot that
    ran before; it runs, with a WARNING that nothing keeps a second bot off the file."""
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    caplog.set_level(logging.WARNING, "opentrain_async")
    cursor = tmp_path / "cursor.json"
    assert await _first_message(client, JSONFileCursorStore(cursor, lock_timeout=0)) == "one"
    assert "cannot be locked" in caplog.text
    assert str(cursor) in caplog.text
