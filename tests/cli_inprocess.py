"""Running the CLI's ``main`` in-process (in a worker thread, with its own event loop),
for tests where the process is not the point: faster than a subprocess, same exit codes
and output."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Iterator, Mapping

from opentrain_async._cli import main
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import Result

_ENV_LOCK = asyncio.Lock()


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


async def cli(
    *args: str, server: FakeOpenTrain | None = None, timeout: float = 60.0, **env: str
) -> Result:
    """``opentrain-async ARGS`` in-process against ``server`` (its token and URL); a
    run longer than ``timeout`` fails the test (its thread is left to finish)."""
    extra = dict(env)
    if server is not None:
        extra.setdefault("OT_API_TOKEN", server.token)
        extra.setdefault("OT_API_BASE_URL", server.base_url)
    async with _ENV_LOCK:
        with _environment(extra):
            return await asyncio.wait_for(asyncio.to_thread(_run, list(args)), timeout)
