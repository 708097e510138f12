"""A Redis URL naming one of its options twice (``?job=a&job=b``): refused, naming the
option, by the one Redis URL parser every reader goes through.  The journal URL used the
last ``job`` in silence (another job's journal), the pacing URL the last ``budget``."""

from __future__ import annotations

from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async._cli._journal import JournalError
from opentrain_async._cli._journal_redis import RedisJournalURL
from opentrain_async._redis import RedisURLError, parse_redis_url
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl

PASSWORD = "s3cretWORD"


def test_the_parser_refuses_an_option_given_twice() -> None:
    with pytest.raises(RedisURLError, match="the parameter 'job' is given 2 times: give it once"):
        parse_redis_url(f"redis://:{PASSWORD}@cache:6379/0?job=a&lease=30&job=b")


def test_a_journal_url_with_two_jobs_names_the_option() -> None:
    with pytest.raises(JournalError) as error:
        RedisJournalURL.parse(f"redis://:{PASSWORD}@cache/0?job=x&job=y")
    assert "'job' is given 2 times" in str(error.value)
    assert PASSWORD not in str(error.value)


async def test_the_sdk_refuses_a_pacing_option_given_twice(server: FakeOpenTrain) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:1/0?budget=0.5&budget=5"
    with pytest.raises(ConfigurationError) as error:
        async with OpenTrainClient(server.token, server.base_url, pacing_url=url):
            pass
    assert "'budget' is given 2 times" in str(error.value)
    assert PASSWORD not in str(error.value)


@pytest.mark.parametrize(
    ("option", "url", "name"),
    [
        ("--journal", f"redis://:{PASSWORD}@127.0.0.1:1/0?job=x&job=y", "job"),
        ("--pacing-url", f"redis://:{PASSWORD}@127.0.0.1:1/0?budget=1&budget=2", "budget"),
    ],
)
async def test_the_cli_says_which_option_is_repeated(
    server: FakeOpenTrain, tmp_path: Path, option: str, url: str, name: str
) -> None:
    """Exit 2 before Redis or the API is asked anything; the password never shown."""
    conversation = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conversation, "content": "hi"}])
    result = await run_cli("bulk", str(job), option, url, env=cli_env(server, tmp_path))
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert f"the parameter {name!r} is given 2 times: give it once" in result.err
    assert PASSWORD not in result.err + result.out
    assert server.stats()["requests"] == 0
