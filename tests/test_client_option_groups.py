"""The client's option groups (``pacing=``, ``retries=``, ``time=``) and the flat keywords
they gather: both spellings configure the same client, a contradiction between them is
refused by name, and no spelling puts a secret in a repr."""

from __future__ import annotations

import inspect

import pytest

from opentrain_async import (
    ConfigurationError,
    OpenTrainClient,
    PacingOptions,
    RateLimitError,
    RetryEvent,
    RetryOptions,
    RetryPolicy,
    TimeOptions,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


def test_the_constructor_takes_at_most_15_parameters() -> None:
    """The grouped signature: 14 named parameters and the flat keywords."""
    parameters = inspect.signature(OpenTrainClient.__init__).parameters
    assert len(parameters) - 1 <= 15  # self aside


@pytest.mark.parametrize("spelling", ["grouped", "flat"])
async def test_both_spellings_configure_retries_time_and_pacing(
    server: FakeOpenTrain, spelling: str
) -> None:
    """``retries=RetryOptions(max_retries=1, on_retry=...)`` and ``max_retries=1,
    on_retry=...`` retry a 429 exactly once on the given fake clock, and set the pacer's
    rate and the read-back delays alike."""
    conv = server.add_conversation()
    server.throttle_next(3, retry_after=1)
    events: list[RetryEvent] = []
    fake = FakeTime()
    knobs = {
        "max_retries": 1,
        "on_retry": events.append,
        "clock": fake.clock,
        "sleep": fake.sleep,
        "reconcile_delay": 2.5,
        "clock_skew": 7.0,
        "rate_limit": 1000.0,
    }
    if spelling == "grouped":
        client = make_client(
            server,
            retries=RetryOptions(max_retries=1, on_retry=events.append),
            time=TimeOptions(clock=fake.clock, sleep=fake.sleep, reconcile_delay=2.5, clock_skew=7),
            pacing=PacingOptions(rate_limit=1000.0),
        )
    else:
        client = make_client(server, **knobs)
    async with client:
        assert client.retry_policy.max_retries == 1
        assert client.pacer.rate_limit == 1000.0
        assert (client.reconcile_delay, client.clock_skew) == (2.5, 7.0)
        with pytest.raises(RateLimitError):
            await client.send_message(conv, "hi")
    assert len(events) == 1
    assert fake.slept > 0  # waited on the fake clock, not the real one


async def test_a_flat_keyword_fills_its_group_and_an_equal_one_is_no_conflict(
    server: FakeOpenTrain,
) -> None:
    """Flat keywords and groups combine field by field; saying the same thing twice is
    allowed."""
    client = make_client(
        server, retries=RetryOptions(max_retry_after=9.0), max_retries=2, max_retry_after=9.0
    )
    async with client:
        assert (client.retry_policy.max_retries, client.retry_policy.max_retry_after) == (2, 9.0)


@pytest.mark.parametrize(
    ("flat", "group", "named"),
    [
        ({"max_retries": 3}, {"retries": RetryOptions(max_retries=2)}, "retries=RetryOptions"),
        ({"timeout": 5.0}, {"time": TimeOptions(timeout=10.0)}, "time=TimeOptions(timeout"),
        (
            {"pacing_url": "redis://:hunter2@cache:6379/0"},
            {"pacing": PacingOptions(url="redis://:other@cache:6379/0")},
            "pacing=PacingOptions(url",
        ),
    ],
    ids=["retries", "time", "pacing"],
)
def test_a_flat_keyword_contradicting_its_group_is_refused_naming_both(
    server: FakeOpenTrain, flat: dict[str, object], group: dict[str, object], named: str
) -> None:
    """Neither value silently wins; the message names the keyword and the group field,
    never the values (a pacing URL holds a password)."""
    with pytest.raises(ConfigurationError) as info:
        make_client(server, **group, **flat)
    message = str(info.value)
    assert f"{next(iter(flat))}=" in message
    assert named in message
    assert "hunter2" not in message
    assert ":other@" not in message


def test_a_misspelt_flat_keyword_is_a_type_error(server: FakeOpenTrain) -> None:
    """As for any signature: a typo fails loudly (mypy catches it before, via the
    ``FlatOptions`` TypedDict)."""
    with pytest.raises(TypeError, match="max_retires"):
        make_client(server, max_retires=3)


def test_a_group_of_the_wrong_type_is_refused(server: FakeOpenTrain) -> None:
    """``retries={"max_retries": 1}`` names the class it should have been."""
    with pytest.raises(ConfigurationError, match="RetryOptions"):
        make_client(server, retries={"max_retries": 1})


def test_the_group_knob_conflicts_of_before_still_hold(server: FakeOpenTrain) -> None:
    """A whole policy beside the knobs it replaces is refused whichever way it came."""
    with pytest.raises(ConfigurationError, match="retry_policy"):
        make_client(server, retries=RetryOptions(policy=RetryPolicy(), max_retries=1))


async def test_no_repr_shows_the_token_or_the_pacing_password(server: FakeOpenTrain) -> None:
    """The client's repr hides its token; ``PacingOptions`` hides its URL's password."""
    options = PacingOptions(url="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(options)
    assert "cache:6379" in repr(options)
    async with make_client(server, pacing=PacingOptions(url="")) as client:
        assert server.token not in repr(client)
        assert server.token not in repr(client.with_options(timeout=5))


async def test_with_options_copies_a_grouped_client(server: FakeOpenTrain) -> None:
    """``with_options`` overrides the grouped retry budget for the copy only."""
    conv = server.add_conversation()
    fake = FakeTime()
    time = TimeOptions(clock=fake.clock, sleep=fake.sleep)
    async with make_client(server, retries=RetryOptions(max_retries=4), time=time) as client:
        copy = client.with_options(max_retries=0)
        assert (copy.retry_policy.max_retries, client.retry_policy.max_retries) == (0, 4)
        assert (await copy.send_message(conv, "hi")).content == "hi"
