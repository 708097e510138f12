"""``OPENTRAIN_LOG=debug|info``: switch the SDK's logging on from the environment.

``OPENTRAIN_LOG_FORMAT=json`` writes one JSON object per line instead of text (the CLI's
``--log-format json`` does the same): every record's structured fields (``extra=``: a
request's ``method``, ``path``, ``status``, ``duration_ms``, ``request_id``, ``attempt``)
become keys, for log collectors in Kubernetes or cron mail.  Both formats are the CLI's.

As ``OPENAI_LOG`` does for openai-python: at import, the ``opentrain_async`` logger gets
that level and, unless the application already gave it a handler, one that writes to
stderr.  Without the variable nothing is configured: libraries leave logging to the
application.  Tokens never reach a log record; message content does only with
``log_content=True``.  Log lines quote what a server said (request ids, event ids):
the handler installed here, like the CLI's, prints control characters escaped, so a
hostile server cannot forge log lines or retitle a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone

__all__ = [
    "LOG_ENV_VAR",
    "LOG_FORMATS",
    "LOG_FORMAT_ENV_VAR",
    "TEXT_FORMAT",
    "JsonFormatter",
    "SafeFormatter",
    "configure_logging_from_env",
    "formatter",
    "log_format_from_env",
    "terminal_safe",
]

LOG_ENV_VAR = "OPENTRAIN_LOG"
LOG_FORMAT_ENV_VAR = "OPENTRAIN_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The one text format of ``OPENTRAIN_LOG`` and the CLI's ``-v``."""
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


_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message`` and every ``extra=`` field whose value is a plain JSON value.

    Control characters are escaped by JSON itself, so a server's text cannot forge lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and (value is None or isinstance(value, (str, int, float))):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = f"{type(error).__name__}: {error}"
        return json.dumps(entry, ensure_ascii=True, default=str)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def formatter(log_format: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter for ``text`` (``text_format``, control characters escaped) or ``json``."""
    if log_format == "json":
        return JsonFormatter()
    return SafeFormatter(text_format)


def configure_logging_from_env(env: Mapping[str, str] | None = None) -> int | None:
    """Apply ``$OPENTRAIN_LOG``; returns the level set, or None when it is unset.

    Other values than ``debug`` and ``info`` are reported once on stderr and ignored.
    """
    value = (os.environ if env is None else env).get(LOG_ENV_VAR, "").strip().lower()
    if not value:
        return None
    level = _LEVELS.get(value)
    if level is None:
        _ignoring(LOG_ENV_VAR, value, "debug or info")
        return None
    logger = logging.getLogger("opentrain_async")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter(log_format_from_env(env)))
        logger.addHandler(handler)
    return level


def log_format_from_env(env: Mapping[str, str] | None = None, *, report: bool = True) -> str:
    """``$OPENTRAIN_LOG_FORMAT``: ``json``, else ``text`` (the default).  Another value
    (``xml`` was ignored in silence) is read as ``text`` and, with ``report``, said on
    stderr, as ``$OPENTRAIN_LOG``'s are (a caller reading it a second time passes False)."""
    value = (os.environ if env is None else env).get(LOG_FORMAT_ENV_VAR, "").strip().lower()
    if report and value and value not in LOG_FORMATS:
        _ignoring(LOG_FORMAT_ENV_VAR, value, " or ".join(LOG_FORMATS))
    return "json" if value == "json" else "text"


def _ignoring(variable: str, value: str, accepted: str) -> None:
    """Say on stderr that ``variable=value`` is ignored, and what it accepts."""
    print(f"opentrain_async: ignoring {variable}={value!r} (use {accepted})", file=sys.stderr)
