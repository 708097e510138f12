"""RFC 9110 makes a recipient accept all three HTTP date formats (IMF-fixdate, RFC 850,
asctime), and all three are GMT.  A proxy giving ``Date`` as IMF-fixdate and
``Retry-After`` in asctime lost its hint on 748ad8c:
``email.utils`` reads asctime as a naive time and the naive-minus-aware subtraction
raised, so a "come back in 10 minutes" 429 was retried at once.  A ``Date`` far from
the ``Retry-After`` date is a clock, not a plan: a proxy without one stamps 1970, and
on 748ad8c its 56-year hint raised at once, which ended a whole bulk send (every later
input not attempted).  Beyond a year it is no hint: retried as a bare 429."""

from __future__ import annotations

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._errors import RateLimitError, error_from_response
from opentrain_async._http_date import http_date_hint
from opentrain_async.testing import FakeTime

from . import test_retry_after_http_date as dated
from .test_retry_after_http_date import TOKEN, DatedOrigin, serving

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
        ("Thu, 01 Jan 1970 00:00:00 GMT", None),  # a clockless box (748ad8c: 56 years)
        ("Fri, 31 Dec 9999 23:59:59 GMT", None),  # after the date: no hint, never negative
        ("not a date", None),
    ],
)
def test_a_date_header_far_from_the_retry_after_date_is_no_hint(
    date: str, hint: float | None
) -> None:
    assert http_date_hint({"Retry-After": DATE, "Date": date}) == hint


async def test_a_clockless_proxy_s_date_never_ends_a_bulk_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first send's 429 carries ``Date: 1970`` and a sound ``Retry-After`` date:
    retried, and all three inputs are sent (748ad8c: one rate_limited, two not
    attempted)."""
    origin = DatedOrigin("Mon, 07 Dec 2026 15:00:05 GMT")
    monkeypatch.setattr(dated, "NOW", "Thu, 01 Jan 1970 00:00:00 GMT")  # its Date
    t = FakeTime()
    async with (
        serving(origin) as url,
        OpenTrainClient(TOKEN, url, env={}, clock=t.clock, sleep=t.sleep) as client,
    ):
        report = await client.send_all([("conv_1", f"hi {i}") for i in range(3)])
    assert report.counts["sent"] == 3
