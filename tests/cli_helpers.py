"""Running the CLI against a FakeOpenTrain served by the test's loop.

``run_cli`` runs the command line in this process, in a worker thread with its own event
loop, with the given environment, arguments, working directory and stdin, and captures its
stdout and stderr as bytes (UTF-8, as a child process would write them). ``run_cli_process``
and ``start_cli`` start a real ``python -m opentrain_async`` for tests where the process is
the point: signals, kill -9, a terminal, the interpreter's own start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from opentrain_async.testing import FakeOpenTrain

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def cli_env(server: FakeOpenTrain | None, tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with the fake server's token and URL, and no real CLI config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OT_API_TOKEN", "OPENTRAIN_API_TOKEN", "OT_API_BASE_URL")
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONWARNINGS"] = "error"
    if server is not None:
        env["OT_API_TOKEN"] = server.token
        env["OT_API_BASE_URL"] = server.base_url
    env.update(extra)
    return env


async def start_cli(
    *args: str, env: Mapping[str, str], cwd: Path = ROOT
) -> asyncio.subprocess.Process:
    """Start ``python -m opentrain_async ARGS`` (from any ``cwd``: PYTHONPATH finds it)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opentrain_async",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
    )


async def run_cli(
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float = 60.0,
    cwd: Path = ROOT,
) -> Result:
    """Run the command line with ARGS to completion, in this process (see the module doc)."""
    return await run_main("opentrain_async", *args, env=env, stdin=stdin, timeout=timeout, cwd=cwd)


async def cli(
    *args: str, server: FakeOpenTrain | None = None, timeout: float = 60.0, **env: str
) -> Result:
    """``run_cli`` in this process's environment plus ``env`` and its working directory,
    against ``server`` (its token and URL) when given: shorthand for the tests that need
    no environment of their own."""
    extra = dict(env)
    if server is not None:
        extra.setdefault("OT_API_TOKEN", server.token)
        extra.setdefault("OT_API_BASE_URL", server.base_url)
    return await run_cli(*args, env={**os.environ, **extra}, timeout=timeout, cwd=Path.cwd())


async def run_main(
    module: str,
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float = 60.0,
    cwd: Path = ROOT,
) -> Result:
    """Run ``python -m MODULE ARGS`` in this process: ``MODULE.__main__.main()`` with that
    ``sys.argv``, in a worker thread with its own loop, as ``run_cli`` does.

    Timed out or cancelled (the test failed), the run gets a KeyboardInterrupt, as from
    Ctrl-C, so that it ends with its test instead of sending on into the next one."""
    thread: list[int] = []
    run = asyncio.ensure_future(
        asyncio.to_thread(_run_in_process, module, args, env, stdin, cwd, thread)
    )
    try:
        return await asyncio.wait_for(asyncio.shield(run), timeout)
    except BaseException:
        if thread and not run.done():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread[0]), ctypes.py_object(KeyboardInterrupt)
            )
            await asyncio.wait({run}, timeout=30)
        raise


async def run_cli_process(
    *args: str,
    env: Mapping[str, str],
    stdin: str | None = None,
    timeout: float = 60.0,
    cwd: Path = ROOT,
) -> Result:
    """Run ``python -m opentrain_async ARGS`` in a real child process to completion."""
    proc = await start_cli(*args, env=env, cwd=cwd)
    data = stdin.encode() if stdin is not None else b""
    out, err = await asyncio.wait_for(proc.communicate(data), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


_ONE_AT_A_TIME = threading.Lock()
"""The environment, streams and working directory are the process's: one run at a time."""


@contextlib.contextmanager
def _as_a_fresh_process(
    env: Mapping[str, str], cwd: Path, stdin: str | None
) -> Iterator[tuple[io.BytesIO, io.BytesIO]]:
    """This process's environment, argv, cwd, std streams and logging set up as
    ``python -m opentrain_async`` would start with them; all restored afterwards."""
    if not _ONE_AT_A_TIME.acquire(blocking=False):
        raise RuntimeError("one in-process CLI run at a time: use run_cli_process/start_cli")
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_argv = sys.argv
    root, sdk = logging.getLogger(), logging.getLogger("opentrain_async")
    saved_root = root.handlers[:], root.level
    saved_sdk = sdk.handlers[:], sdk.level
    out, err = io.BytesIO(), io.BytesIO()
    ours = (
        io.TextIOWrapper(io.BytesIO((stdin or "").encode()), encoding="utf-8"),
        io.TextIOWrapper(out, encoding="utf-8"),
        io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace"),
    )
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.stdin, sys.stdout, sys.stderr = ours
        sys.argv = ["opentrain-async"]
        root.handlers, sdk.handlers = [], []
        sdk.setLevel(logging.NOTSET)
        from opentrain_async._logs import configure_logging_from_env

        configure_logging_from_env()  # what importing the package does in a fresh process
        yield out, err
    finally:
        for stream in ours:
            with contextlib.suppress(ValueError):  # detached: the buffers outlive the wrappers
                stream.flush()
                stream.detach()
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        sys.argv = saved_argv
        root.handlers, root.level = saved_root
        sdk.handlers, sdk.level = saved_sdk
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        _ONE_AT_A_TIME.release()


def in_process_runs_ended(timeout: float) -> bool:
    """Whether no in-process run is going on, waiting up to ``timeout`` seconds for one
    (a test must not end with a run still using the process's streams and environment)."""
    if not _ONE_AT_A_TIME.acquire(timeout=timeout):
        return False
    _ONE_AT_A_TIME.release()
    return True


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def _run_in_process(
    module: str,
    args: tuple[str, ...],
    env: Mapping[str, str],
    stdin: str | None,
    cwd: Path,
    thread: list[int],
) -> Result:
    main = importlib.import_module(f"{module}.__main__").main
    thread.append(threading.get_ident())

    with _as_a_fresh_process(env, cwd, stdin) as (out, err):
        sys.argv = [module, *args]
        try:
            code = main()
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:  # what the interpreter would print before exiting 1
            traceback.print_exc(file=sys.stderr)
            code = 1
    return Result(code, out.getvalue().decode(), err.getvalue().decode())


async def until_committed(
    server: FakeOpenTrain,
    n: int,
    run: asyncio.Future[Result] | asyncio.subprocess.Process,
    timeout: float = 30,
) -> None:
    """Wait until ``server`` has committed ``n`` messages while ``run`` (a CLI run in
    this process, or a child) still runs: the moment to kill it, break Redis or edit
    its files.  A run that ended first, or no progress within ``timeout``, fails."""
    deadline = time.monotonic() + timeout
    while server.stats()["committed"] < n:
        assert time.monotonic() < deadline, f"no {n} deliveries within {timeout} s"
        if isinstance(run, asyncio.subprocess.Process):
            assert run.returncode is None, f"the run ended first ({run.returncode})"
        else:
            assert not run.done(), f"the run ended first: {run.result().err}"
        await asyncio.sleep(0.005)


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assert_one_line_error(result: Result) -> None:
    """Errors are one clear line on stderr: no traceback."""
    assert "Traceback" not in result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("opentrain-async: error: ")


def journal_header(job: Path, server: FakeOpenTrain | None = None) -> str:
    """The header line a journal for ``job`` starts with (to write journals by hand)."""
    record = {
        "journal": "opentrain-async",
        "format": 2,
        "input": {
            "path": str(job.resolve()),
            "apiRoot": None if server is None else server.base_url + "/api/public/v1",
        },
        "at": 0.0,
    }
    return json.dumps(record) + "\n"
