"""Live clients' tokens masked in every record of the SDK's loggers.

A hostile server (or a proxy's debug page) can echo the ``Authorization`` header in any
field the SDK logs: an event's id, a message's id.  The answers that reach exceptions
are masked where they are read (``_answers.without_secret``), but the read side logs
the server's ids where no client is at hand.  So every client registers its token here
for as long as it lives, and one filter on the ``opentrain_async`` loggers masks each
record's text and string attributes before any handler sees it.
"""

from __future__ import annotations

import itertools
import logging
import weakref

from ._answers import masked, secret_forms

__all__ = ["register_secret"]

_live: dict[int, tuple[str, ...]] = {}
_ORIGIN = frozenset(vars(logging.makeLogRecord({})))  # name, levelname, pathname...
"""A record's own attributes, set by ``logging`` from our code, never the server's: a
short token ("async", "WARN") masked in them broke handlers (``logging.Filter`` on the
logger's name, level names).  ``msg`` is masked through ``getMessage``; ``exc_text``
and ``stack_info`` may quote the server, so they are masked like ``extra=`` fields."""
_QUOTING = frozenset({"exc_text", "stack_info"})
_keys = itertools.count()


def register_secret(owner: object, secret: str) -> None:
    """Mask ``secret`` in the SDK's log records until ``owner`` is garbage collected."""
    if secret:
        key = next(_keys)
        _live[key] = secret_forms(secret)
        weakref.finalize(owner, _live.pop, key, None)


class _SecretFilter(logging.Filter):
    """Replaces every live token's forms by ``***`` in a record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _live:
            return True
        forms = sorted({form for group in list(_live.values()) for form in group}, key=len)[::-1]
        text = record.getMessage()
        clean = masked(text, tuple(forms))
        if clean != text:
            record.msg, record.args = clean, None
        for name, value in list(vars(record).items()):  # extra= fields (JSON logs)
            if name in _ORIGIN and name not in _QUOTING:
                continue
            if isinstance(value, str) and any(f in value for f in forms):
                setattr(record, name, masked(value, tuple(forms)))
        return True


_FILTER = _SecretFilter()
for _name in ("opentrain_async", "opentrain_async.cli"):
    logging.getLogger(_name).addFilter(_FILTER)
