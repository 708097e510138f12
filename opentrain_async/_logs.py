"""``OPENTRAIN_LOG=debug|info``: switch the SDK's logging on from the environment.

As ``OPENAI_LOG`` does for openai-python: at import, the ``opentrain_async`` logger gets
that level and, unless the application already gave it a handler, one that writes to
stderr.  Without the variable nothing is configured: libraries leave logging to the
application.  Tokens never reach a log record; message content does only with
``log_content=True``.  Log lines quote what a server said (request ids, event ids):
the handler installed here, like the CLI's, prints control characters escaped, so a
hostile server cannot forge log lines or retitle a terminal.
"""

from __future__ import annotations

import logging
import os
import sys
import unicodedata
from collections.abc import Mapping

__all__ = ["LOG_ENV_VAR", "SafeFormatter", "configure_logging_from_env", "terminal_safe"]

LOG_ENV_VAR = "OPENTRAIN_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


def terminal_safe(text: str) -> str:
    """``text`` with control characters and lone surrogates shown escaped (``\\x1b``).

    What a server or another participant wrote must not move the cursor, retitle or
    clear the terminal, or forge output lines when it is printed or logged.
    """
    if text.isprintable():
        return text
    return "".join(
        ascii(char)[1:-1] if unicodedata.category(char) in ("Cc", "Cs") else char for char in text
    )


class SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped: they quote what the server said."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


def configure_logging_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """Apply ``$OPENTRAIN_LOG``; returns the level set, or None when it is unset.

    Other values than ``debug`` and ``info`` are reported once on stderr and ignored.
    """
    value = (os.environ if env is None else env).get(LOG_ENV_VAR, "").strip().lower()
    if not value:
        return None
    level = _LEVELS.get(value)
    if level is None:
        print(
            f"opentrain_async: ignoring {LOG_ENV_VAR}={value!r} (use debug or info)",
            file=sys.stderr,
        )
        return None
    logger = logging.getLogger("opentrain_async")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeFormatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return level
