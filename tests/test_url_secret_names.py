"""A URL's query parameter named like a secret the way the CLI's flags are (``pwd``,
``tok``): its value is ``***`` wherever the URL is quoted.  The CLI masked ``--pwd X``
and ``--tok=X`` in usage errors (adv10), but a Redis URL's redaction knew a shorter
list of names, so ``?pwd=...`` in a journal URL was quoted whole in the "unknown
parameter" error.  (Failed on 20eaf6e: the value was printed.)
"""

from __future__ import annotations

import pytest

from opentrain_async._cli._journal import JournalError
from opentrain_async._cli._journal_redis import RedisJournalURL
from opentrain_async._redis import redact_url

SECRET = "hunter2-Zq7SECRET"


@pytest.mark.parametrize("name", ["pwd", "tok", "apiKey", "password", "auth"])
def test_a_secret_named_parameter_is_redacted(name: str) -> None:
    url = f"redis://redis:6379/0?job=j&{name}={SECRET}"
    assert redact_url(url) == f"redis://redis:6379/0?job=j&{name}=***"
    with pytest.raises(JournalError) as info:
        RedisJournalURL.parse(url)
    assert SECRET not in str(info.value)
    assert f"{name}=***" in str(info.value)
