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
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from ._answers import masked, secret_forms

__all__ = ["register_secret"]

_live: dict[int, tuple[str, ...]] = {}
_forms: tuple[str, ...] = ()
"""Every live token's forms, longest first (a token inside another's form is masked
after it), kept current at register and collect time, not rebuilt per record."""
_ORIGIN = frozenset(vars(logging.makeLogRecord({})))  # name, levelname, pathname...
"""A record's own attributes, set by ``logging`` from our code, never the server's: a
short token ("async", "WARN") masked in them broke handlers (``logging.Filter`` on the
logger's name, level names).  ``msg`` is masked through ``getMessage``; ``exc_text``
and ``stack_info`` may quote the server, so they are masked like ``extra=`` fields."""
_QUOTING = frozenset({"exc_text", "stack_info"})
_keys = itertools.count()
_lock = threading.RLock()
"""Held while ``_live`` changes and ``_forms`` is rebuilt from it: a client collected in
one thread (its finalizer) while another opens one swapped in a snapshot taken before
the other's token was added, leaving a live token unmasked (adv9).  Reentrant: a
finalizer may run in the thread holding it, when a collection starts inside."""


def register_secret(owner: object, secret: str) -> None:
    """Mask ``secret`` in the SDK's log records until ``owner`` is garbage collected."""
    if secret:
        key, forms = next(_keys), secret_forms(secret)
        with _lock:
            _live[key] = forms
            _refresh()
        weakref.finalize(owner, _forget, key)


def _forget(key: int) -> None:
    """A client collected (a finalizer: any thread, so ``_forms`` is swapped whole)."""
    with _lock:
        _live.pop(key, None)
        _refresh()


def _refresh() -> None:
    """Rebuild ``_forms`` from ``_live`` (under ``_lock``), swapped in whole."""
    global _forms
    _forms = tuple(sorted({f for group in list(_live.values()) for f in group}, key=len)[::-1])


class _SecretFilter(logging.Filter):
    """Replaces every live token's forms by ``***`` in a record (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        forms = _forms
        if not forms:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a bad format: left for the handler to report (handleError),
            # as before this filter, which raised it into the code that logged; masked,
            # for handleError prints the arguments
            record.args = _masked_args(record.args, forms)
        else:
            clean = masked(text, forms)
            if clean != text:
                record.msg, record.args = clean, None
        for name, value in list(vars(record).items()):  # extra= fields (JSON logs)
            if name in _ORIGIN and name not in _QUOTING:
                continue
            if isinstance(value, str) and any(f in value for f in forms):
                setattr(record, name, masked(value, forms))
        return True


def _masked_args(args: Any, forms: tuple[str, ...]) -> Any:
    """A record's ``args`` (a tuple or a mapping) with each string masked."""
    if isinstance(args, Mapping):
        return {k: masked(v, forms) if isinstance(v, str) else v for k, v in args.items()}
    if isinstance(args, tuple):
        return tuple(masked(v, forms) if isinstance(v, str) else v for v in args)
    return args


_FILTER = _SecretFilter()
for _name in ("opentrain_async", "opentrain_async.cli"):
    logging.getLogger(_name).addFilter(_FILTER)
