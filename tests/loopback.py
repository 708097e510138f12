"""An aiohttp app served on loopback for one test: a hostile or odd server in a few lines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from aiohttp import web
from aiohttp.test_utils import TestServer

__all__ = ["serving", "stamp"]


def stamp() -> str:
    """Now, as the API writes ``createdAt``: what a server stamps a new message with (a
    201's message stamped long before the answer's ``Date`` reads as a replayed one)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port); yields its base URL, closed on exit."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
