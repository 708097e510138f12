"""``--pacing-url`` with a password the SDK takes (``/``, ``#``, ``?`` unencoded): the
flag's check splits it as the SDK does, so it neither refuses a URL the SDK accepts nor
quotes a piece of the password as the "database"."""

from __future__ import annotations

import pytest

from opentrain_async._cli import _pacing_url_problem
from opentrain_async._pacing.redis_backend import parse_pacing_url


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa/ssWORD@cache/0",
        "redis://:pa/ssWORD@cache:6379/0",
        "redis://user:p%2Fq/ssWORD@cache/0",
        "rediss://:s3cr#etWORD@cache:6380/1",
        "redis://:a?b=ssWORD@cache/0",
    ],
)
def test_a_password_with_a_slash_is_taken_as_the_sdk_takes_it(url: str) -> None:
    """The SDK accepts it, so the flag does too (it used to say "no host", or quote
    the part after the "/" as the database)."""
    parse_pacing_url(url)  # the SDK's own check: no error
    assert _pacing_url_problem(url) is None


def test_a_bad_database_after_such_a_password_never_quotes_it() -> None:
    """The database named in the message is what follows the host, never the password."""
    problem = _pacing_url_problem("redis://:pa/ssWORD@cache:6379/zero")
    assert problem is not None
    assert "the database must be a number, got 'zero'" in problem
    assert "ssWORD" not in problem
