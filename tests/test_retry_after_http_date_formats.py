"""RFC 9110 makes a recipient accept all three HTTP date formats (IMF-fixdate, RFC 850,
asctime), and all three are GMT.  A proxy giving ``Date`` as IMF-fixdate and
``Retry-After`` in asctime lost its hint on 748ad8c:
``email.utils`` reads asctime as a naive time and the naive-minus-aware subtraction
raised, so a "come back in 10 minutes" 429 was retried at once.  A date far from our
clock stays the server's business: both times are its own (held, asserted here)."""

from __future__ import annotations

import pytest

from opentrain_async._errors import RateLimitError, error_from_response
from opentrain_async._http_date import http_date_hint

DATE = "Mon, 07 Dec 2026 15:00:00 GMT"


@pytest.mark.parametrize(
    "retry_at",
    [
        "Mon Dec  7 15:10:00 2026",  # asctime
        "Monday, 07-Dec-26 15:10:00 GMT",  # RFC 850
    ],
)
def test_a_retry_after_date_in_any_http_format_is_a_hint(retry_at: str) -> None:
    error = error_from_response(429, b"", {"Retry-After": retry_at, "Date": DATE})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 600.0  # on 748ad8c (asctime): None


def test_a_date_header_in_asctime_with_an_imf_retry_after() -> None:
    headers = {"Retry-After": "Mon, 07 Dec 2026 15:00:30 GMT", "Date": "Mon Dec  7 15:00:00 2026"}
    assert http_date_hint(headers) == 30.0


@pytest.mark.parametrize(
    ("date", "hint"),
    [
        ("Thu, 01 Jan 1970 00:00:00 GMT", 1_796_655_600.0),  # a clockless box: raised at once
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),  # after the date: no hint, never negative
        ("not a date", None),
    ],
)
def test_a_date_far_from_ours_is_taken_as_the_server_says(date: str, hint: float | None) -> None:
    assert http_date_hint({"Retry-After": DATE, "Date": date}) == hint
