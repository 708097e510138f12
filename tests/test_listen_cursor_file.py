"""A listen() cursor file someone edited: a ConfigurationError, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import (
    ConfigurationError,
)
from opentrain_async._listen import JSONFileCursorStore

from .test_hostile import arena

__all__ = ["arena"]  # the loopback servers fixture, shared with test_hostile


# -- a listen() cursor file someone edited -------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b'{"cursor": "caf\xe9"}', b"[" * 100_000 + b"]" * 100_000],
    ids=["latin-1", "nested 100,000 deep"],
)
async def test_a_damaged_cursor_file_is_a_configuration_error(
    tmp_path: Path, content: bytes
) -> None:
    """Was a raw UnicodeDecodeError / RecursionError out of listen()'s first load."""
    path = tmp_path / "cursor.json"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError, match="cursor file"):
        await JSONFileCursorStore(path).load()
