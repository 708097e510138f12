"""A ``Retry-After`` header given as an HTTP date (RFC 9110), not seconds.

The API's own hints are seconds, but a CDN or proxy in front of it may answer 429 with
a date.  Ignored, a date an hour ahead was a 429 without a hint: retried within a
second instead of raised as beyond ``max_retry_after``.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

__all__ = ["http_date_hint", "server_time"]


def http_date_hint(headers: Mapping[str, str]) -> float | None:
    """Seconds from the answer's ``Date`` to its ``Retry-After`` date; None when either
    is missing or not an HTTP date, or the date is not after ``Date``.

    Both times are the server's, so our clock's error never enters the hint.
    """
    try:
        retry_at = _gmt(headers.get("Retry-After", ""))
        now = _gmt(headers.get("Date", ""))
        seconds = (retry_at - now).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):  # unparsable, or naive
        return None
    return seconds if 0 < seconds <= _MAX_HINT else None


def server_time(headers: Mapping[str, str] | None) -> datetime | None:
    """The server's clock when it answered: ``Date``, plus ``Age`` when a cache served
    the answer (a cache replaying a stored response keeps its original ``Date`` and
    says how old it is).  None when there is no ``Date`` or it is not an HTTP date."""
    if headers is None:
        return None
    try:
        now = _gmt(headers.get("Date", ""))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if now.tzinfo is None:
        return None
    age = headers.get("Age", "")
    # RFC 9111: ASCII digits, whole seconds (str.isdigit takes "²", which int() refuses);
    # over 31 years ignored.
    if age.isascii() and age.isdigit() and len(age) <= 9:
        now += timedelta(seconds=int(age))
    return now


_MAX_HINT = 366 * 86400.0
"""Beyond a year a date's hint is a clock, not a plan: a proxy without one stamps
``Date: Thu, 01 Jan 1970``, and the 56-year hint against a sound ``Retry-After`` raised
at once as beyond ``max_retry_after``, which ends a whole bulk send (``quota_gone``).
Without a hint the 429 is retried as one without a date (its backoff)."""


_ASCTIME = re.compile(r"[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}")
"""ANSI C's asctime() format, RFC 9110's third: no zone written, GMT by definition."""


def _gmt(value: str) -> datetime:
    """An HTTP date in any of RFC 9110's three formats, as an aware datetime.

    ``email.utils`` reads asctime as a naive time, and a naive time less an aware one
    raised: a proxy giving ``Date`` as IMF-fixdate and ``Retry-After`` in asctime lost
    its hint.  Any other date without a zone stays naive (not an HTTP date: no hint).
    """
    parsed = email.utils.parsedate_to_datetime(value)
    if parsed.tzinfo is None and _ASCTIME.fullmatch(value.strip()):
        return parsed.replace(tzinfo=timezone.utc)
    return parsed
