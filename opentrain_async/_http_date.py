"""A ``Retry-After`` header given as an HTTP date (RFC 9110), not seconds.

The API's own hints are seconds, but a CDN or proxy in front of it may answer 429 with
a date.  Ignored, a date an hour ahead was a 429 without a hint: retried within a
second instead of raised as beyond ``max_retry_after``.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping

__all__ = ["http_date_hint"]


def http_date_hint(headers: Mapping[str, str]) -> float | None:
    """Seconds from the answer's ``Date`` to its ``Retry-After`` date; None when either
    is missing or not an HTTP date with a zone, or the date is not after ``Date``.

    Both times are the server's, so our clock's error never enters the hint.
    """
    try:
        retry_at = email.utils.parsedate_to_datetime(headers.get("Retry-After", ""))
        now = email.utils.parsedate_to_datetime(headers.get("Date", ""))
        seconds = (retry_at - now).total_seconds()
    except (TypeError, ValueError, IndexError, OverflowError):  # unparsable, or naive
        return None
    return seconds if seconds > 0 and math.isfinite(seconds) else None
