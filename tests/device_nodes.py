"""Files that are not regular files, for the tests that refuse them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

__all__ = ["device_twin"]


def device_twin(path: Path) -> Path:
    """A character device like /dev/null at ``path`` (only root may make one: the test
    is skipped otherwise), so that no test ever touches the real /dev/null."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path
