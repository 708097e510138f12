"""The Lua scripts, kept as ``.lua`` files in ``lua/`` (package data), and the one way
they are loaded: ``register``.

``register`` returns redis-py's ``AsyncScript``: EVALSHA by the script's SHA, and on
NOSCRIPT (a restarted or flushed server) SCRIPT LOAD then EVALSHA again.  Chosen over
``EVAL`` because pacing calls its scripts every few milliseconds per process and the
journal once per send: the body (up to ~6 kB) goes to each server once, then 40 bytes.

A script may be the concatenation of several files (``register(r, "pacing_common",
"pacing_reserve")``): shared Lua helpers live in one file, each prepended where used.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["register", "source"]


@functools.cache
def source(*names: str) -> str:
    """The text of ``lua/NAME.lua`` for each name, joined in order (read once)."""
    folder = resources.files("opentrain_async._redis").joinpath("lua")
    return "".join(folder.joinpath(f"{name}.lua").read_text(encoding="utf-8") for name in names)


def register(redis: Redis, *names: str) -> AsyncScript:
    """The script made of ``names`` (see ``source``), bound to ``redis``: no I/O until
    it is called as ``await script(keys=[...], args=[...])``."""
    return redis.register_script(source(*names))
