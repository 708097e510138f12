"""``OPENTRAIN_LOG=debug|info``: switch the SDK's logging on from the environment.

As ``OPENAI_LOG`` does for openai-python: at import, the ``opentrain_async`` logger gets
that level and, unless the application already gave it a handler, one that writes to
stderr.  Without the variable nothing is configured: libraries leave logging to the
application.  Tokens never reach a log record; message content does only with
``log_content=True``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

__all__ = ["LOG_ENV_VAR", "configure_logging_from_env"]

LOG_ENV_VAR = "OPENTRAIN_LOG"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO}


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
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return level
