"""Ctrl-C or SIGTERM while the command line is still starting: a clear exit, no traceback.

``python -m opentrain_async`` and the ``opentrain-async`` script import the package
(aiohttp, attrs, ...: up to a second on a loaded machine) before the CLI's own handling
exists.  A SIGINT then was a ``KeyboardInterrupt`` traceback, a SIGTERM a silent death
(exit -15).  Importing the package runs ``guard_cli_start`` first, which, only when this
process is that command line (never for a program that imports the SDK), exits
128+N with one line: nothing has been read or sent yet.  The CLI's ``main`` replaces
these handlers with its own once it runs.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

__all__ = ["guard_cli_start", "is_cli_process"]

_SIGNALS = ("SIGINT", "SIGTERM")


def is_cli_process() -> bool:
    """True when this process was started as the command line (``python -m
    opentrain_async`` or the ``opentrain-async`` script)."""
    argv = list(getattr(sys, "orig_argv", None) or getattr(sys, "argv", None) or [])
    for at, arg in enumerate(argv[:-1]):
        if arg == "-m":
            return bool(argv[at + 1] == "opentrain_async")
    return any(os.path.basename(a) == "opentrain-async" for a in argv[:2])


def _exit_now(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    text = f"opentrain-async: interrupted by {name} while starting; nothing was sent\n"
    os.write(2, text.encode())
    os._exit(128 + signum)


def guard_cli_start() -> None:
    """Install the start-up handlers, when this process is the command line."""
    if not is_cli_process():
        return
    for name in _SIGNALS:
        try:
            signal.signal(getattr(signal, name), _exit_now)
        except (ValueError, OSError):  # pragma: no cover - not the main thread
            return


guard_cli_start()
