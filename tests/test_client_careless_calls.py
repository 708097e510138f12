"""Careless options and calls as openai-python and httpx users make them: every mistake is a
ConfigurationError (an OpenTrainError) naming the option, and never breaks the client."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterator
from fractions import Fraction

import pytest

from opentrain_async import (
    APIConnectionError,
    ConfigurationError,
    InMemoryPacingBackend,
    InvalidRequestError,
    OpenTrainClient,
    Pacer,
    RetryPolicy,
)
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client

# -- careless options: every mistake is a ConfigurationError naming the option ----------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_concurrency", "8"),  # from os.environ, unconverted
        ("max_concurrency", 2.5),
        ("max_concurrency", True),
        ("max_retries", "3"),
        ("max_retries", 1.5),
        ("max_retry_after", "60"),
        ("rate_limit", "500"),
        ("rate_limit", float("inf")),
        ("max_response_bytes", "1"),
        ("reconcile_delay", "1"),
        ("clock_skew", -5),
        ("user_agent", 5),
        ("timeout", float("inf")),  # raised OverflowError on the first request
        ("timeout", 10**400),
        ("pacing_url", 6379),  # AttributeError: 'int' object has no attribute 'strip'
    ],
)
def test_a_wrong_client_option_is_a_configuration_error_naming_it(
    option: str, value: object
) -> None:
    """``OpenTrainClient(max_concurrency=os.environ["N"])`` and friends: a ConfigurationError
    that names the option, at construction, never a TypeError from ``"8" < 1`` or an
    OverflowError on the first request."""
    with pytest.raises(ConfigurationError, match=option):
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", **{option: value})


@pytest.mark.parametrize(
    ("options", "name"),
    [({"max_retries": "2"}, "max_retries"), ({"timeout": float("inf")}, "timeout")],
)
def test_a_wrong_per_call_option_is_a_configuration_error(
    options: dict[str, object], name: str
) -> None:
    client = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match=name):
        client.with_options(**options)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_retries"):
        RetryPolicy(max_retries="3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("send_all", {"concurrency": "4"}),
        ("send_all", {"concurrency": 0}),
        ("send_all", {"keep_failures": "10"}),
        ("send_many", {"concurrency": "4"}),
        ("send_many", {"grace": "5"}),
        ("send_all", {"reconcile": "no"}),  # truthy: main reconciled (adv8)
        ("send_many", {"reconcile": "false"}),
        ("send_all", {"on_outcome": "print"}),  # main: TypeError after the first send
        ("send_many", {"before_send": 5}),  # main: an "error" outcome per input
    ],
)
async def test_a_wrong_bulk_option_is_a_configuration_error(
    client: OpenTrainClient, method: str, options: dict[str, object]
) -> None:
    """``send_all``/``send_many`` options checked before any input is pulled."""
    pulled: list[int] = []

    def items() -> Iterator[tuple[str, str]]:
        pulled.append(1)
        yield ("conv_1", "hi")

    async def call() -> object:
        if method == "send_many":
            return client.send_many(items(), **options)  # type: ignore[arg-type]
        return await client.send_all(items(), **options)  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError, match=next(iter(options))):
        await call()
    assert pulled == []


# -- careless calls meet an OpenTrainError, and never break the client ----------------------


async def test_claim_ids_of_none_is_refused_and_the_client_keeps_sending(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``claim_ids(None)`` (a journal that had nothing yet) was accepted, then every later
    send of the client and its copies failed with ``TypeError: argument of type
    'NoneType' is not iterable``."""
    conv = server.add_conversation()
    with pytest.raises(InvalidRequestError, match="message_ids"):
        client.with_options(timeout=5).claim_ids(None)  # type: ignore[arg-type]
    assert (await client.send_message(conv, "still fine")).content == "still fine"
    report = await client.send_all([(conv, "and in bulk")])
    assert report.sent == 1


@pytest.mark.parametrize(
    ("content", "since", "field"),
    [(5, 0.0, "content"), ("", 0.0, "content"), ("hi", "yesterday", "since")],
)
async def test_find_own_message_refuses_what_can_never_match(
    server: FakeOpenTrain, client: OpenTrainClient, content: object, since: object, field: str
) -> None:
    """A settle step that passes the wrong thing gets InvalidRequestError naming it, not
    None ("not delivered": the caller would resend) or a TypeError from the arithmetic."""
    conv = server.add_conversation()
    with pytest.raises(InvalidRequestError, match=field):
        await client.find_own_message(conv, content, since=since)  # type: ignore[arg-type]
    assert server.requests == []


@pytest.mark.parametrize("store", [123, {"cursor": "1"}])
async def test_listen_with_a_store_that_is_not_one_is_a_configuration_error(
    client: OpenTrainClient, store: object
) -> None:
    """``listen(store=...)`` with something that is neither a CursorStore nor a path: a
    ConfigurationError saying what a store is (it was AttributeError: no 'load')."""
    with pytest.raises(ConfigurationError, match="CursorStore"):
        await anext(client.listen(store=store))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "policy",
    [{"pacer": Pacer()}, {"pacing_backend": InMemoryPacingBackend()}],
    ids=["pacer", "pacing_backend"],
)
def test_pacing_fail_closed_with_a_pacer_is_refused(policy: dict[str, object]) -> None:
    """``pacing_fail_closed=True`` next to a ``pacer=``/``pacing_backend=`` that replaces
    it was silently ignored (the job then failed open when its operator asked it not to)."""
    with pytest.raises(ConfigurationError, match="not both"):
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", pacing_fail_closed=True, **policy)  # type: ignore[arg-type]


def test_a_client_kept_across_asyncio_runs_says_so() -> None:
    """A module-level client used from two ``asyncio.run()`` calls (a sync web view or a
    task queue calling into async code): the second gets a ConfigurationError that says
    what happened, not aiohttp's bare ``RuntimeError: Event loop is closed``; a batch
    stops at once."""
    client = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", max_retries=0)

    async def read() -> None:
        await client.read_messages("conv_1")

    with pytest.raises(APIConnectionError):  # nothing listens there: the session is made
        asyncio.run(read())
    with pytest.raises(ConfigurationError, match="event loop"):
        asyncio.run(read())
    report = asyncio.run(client.send_all([("conv_1", "a"), ("conv_1", "b")]))
    assert [o.kind for o in report.failures] == ["error", "not_attempted"]
    asyncio.run(client.close())  # and it can still be closed


async def test_a_retry_policy_with_the_client_s_fake_sleep_is_refused(
    server: FakeOpenTrain,
) -> None:
    """``OpenTrainClient(sleep=fake_time.sleep, retry_policy=RetryPolicy(max_retries=3))``
    (a test setup): the policy's own asyncio.sleep would wait out every retry for real,
    silently; refused, naming the fix.  The policy's own sleep works as given."""
    time = FakeTime()
    with pytest.raises(ConfigurationError, match="pass sleep= to the RetryPolicy"):
        make_client(
            server, clock=time.clock, sleep=time.sleep, retry_policy=RetryPolicy(max_retries=3)
        )
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=30)
    policy = RetryPolicy(max_retries=3, sleep=time.sleep)
    async with make_client(server, clock=time.clock, sleep=time.sleep, retry_policy=policy) as c:
        assert (await c.send_message(conv, "hi")).content == "hi"
    assert time.elapsed >= 30


def test_options_accept_any_real_number_type() -> None:
    """Option checks follow the numbers ABCs (numpy scalars from a pandas-read config
    register there), not just int and float: a Fraction timeout is 0.5 s."""
    client = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", timeout=Fraction(1, 2))
    assert client.with_options(timeout=Fraction(3, 2)).retry_policy is client.retry_policy
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", max_concurrency=Fraction(8, 1))


async def test_no_limit_stays_expressible_as_infinity(client: OpenTrainClient) -> None:
    """``max_retry_after=math.inf`` (wait out any hint) and ``grace=math.inf`` (never cut
    a send on the wire) meant "no limit" before the option checks; they still do."""
    assert RetryPolicy(max_retry_after=math.inf).max_retry_after == math.inf
    built = OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", max_retry_after=math.inf)
    assert built.retry_policy.max_retry_after == math.inf
    async with client.send_many([], grace=math.inf) as outcomes:
        assert [o async for o in outcomes] == []


async def test_a_mapping_without_the_api_s_keys_says_which_key_is_missing(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``send_all(csv.DictReader(open(path)))`` on an Excel CSV: the first column is
    ``\\ufeffconversationId`` (a byte order mark).  Each outcome says the key is missing and
    which keys the row has, instead of "conversationId must be a string, got NoneType"."""
    conv = server.add_conversation()
    rows = [{"\ufeffconversationId": conv, "content": "hi"}, {"conversationId": conv}]
    report = await client.send_all(rows)
    assert report.counts["invalid"] == 2
    first, second = (o.error for o in sorted(report.failures, key=lambda o: o.index))
    assert isinstance(first, InvalidRequestError)
    assert first.field == "conversationId"
    assert "no 'conversationId' key" in str(first)
    assert "'\\ufeffconversationId'" in str(first)
    assert isinstance(second, InvalidRequestError)
    assert second.field == "content"
    assert server.sends == []


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"api_token": b"ot_pat_secret_from_a_file"}, "api_token"),
        ({"api_token": 123}, "api_token"),
        ({"api_token": "ot_pat_x", "base_url": b"https://api.example.com"}, "base_url"),
    ],
)
def test_a_token_or_base_url_that_is_not_a_string_is_a_configuration_error(
    options: dict[str, object], name: str
) -> None:
    """``api_token=Path("token").read_bytes()``: ConfigurationError naming the argument
    (with the fix for bytes), never echoing it; it was ``TypeError: '<=' not supported
    between instances of 'str' and 'int'`` (or an AttributeError for an int)."""
    with pytest.raises(ConfigurationError, match=name) as info:
        OpenTrainClient(**options)  # type: ignore[arg-type]
    assert "ot_pat_secret" not in str(info.value)


@pytest.mark.parametrize("rate", ["500", float("nan"), 0])
def test_a_pacer_s_rate_limit_is_checked_like_the_client_s(rate: object) -> None:
    """``Pacer(rate_limit="500")`` named the option only for numbers; a string was a
    TypeError from the comparison."""
    with pytest.raises(ConfigurationError, match="rate_limit"):
        Pacer(rate_limit=rate)  # type: ignore[arg-type]


async def test_a_per_call_reconcile_that_is_not_a_bool_is_refused(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``send_message(..., reconcile="false")``: the client's own ``reconcile=`` was
    checked, the per-call one taken as truthy, so a user who meant "never read back"
    got read-backs (and resends).  Now a ConfigurationError, before any request."""
    conv = server.add_conversation()
    with pytest.raises(ConfigurationError, match="reconcile must be True or False"):
        await client.send_message(conv, "hi", reconcile="false")  # type: ignore[arg-type]
    assert server.requests == []


async def test_a_plain_function_before_send_runs_and_the_inputs_are_sent(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``before_send=`` given as a plain ``def`` (it records each input somewhere): on
    main it ran, then its ``None`` was awaited, so every input failed ("error",
    TypeError) after its record was made, and nothing was sent."""
    conv = server.add_conversation()
    recorded: list[object] = []
    items = [(conv, "one"), (conv, "two")]
    kinds = [o.kind async for o in client.send_many(items, before_send=recorded.append)]
    assert kinds == ["sent", "sent"]
    assert recorded == items
    assert [m["content"] for m in server.messages(conv)] == ["one", "two"]


async def test_a_blocking_sleep_is_refused_where_it_is_given(server: FakeOpenTrain) -> None:
    """``sleep=time.sleep`` (a real wait, as a user thinks of it): on main the client
    accepted it, blocked the event loop at the first 429's wait, then raised TypeError
    (``await None``); ``listen(sleep=time.sleep)`` did the same when idle."""
    with pytest.raises(ConfigurationError, match=r"got time\.sleep"):
        OpenTrainClient(server.token, server.base_url, clock=time.monotonic, sleep=time.sleep)
    async with OpenTrainClient(server.token, server.base_url) as client:
        with pytest.raises(ConfigurationError, match="async function"):
            client.listen(store=None, sleep=time.sleep)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("items", "says"),
    [
        (None, "NoneType, not an iterable"),  # main: a bare TypeError
        ("conv_1", "a string"),  # main: one "invalid" outcome per character
        ({"conversationId": "conv_1", "content": "hi"}, "a mapping"),  # one per key
        (("conv_1", "hi"), "one (conversation_id, content) pair"),  # one per string
    ],
)
async def test_one_message_given_as_the_whole_job_is_refused(
    server: FakeOpenTrain, client: OpenTrainClient, items: object, says: str
) -> None:
    """``send_all(("conv_1", "hi"))`` for ``send_all([("conv_1", "hi")])``: on main each
    string (or character, or key) became an input of its own, all "invalid", and the
    message was never sent; ``None`` raised TypeError.  Now a ConfigurationError saying
    what was given and what to pass, before anything is pulled."""
    with pytest.raises(ConfigurationError, match="items must be the job's messages") as refused:
        await client.send_all(items)  # type: ignore[arg-type]
    assert says in str(refused.value)
    with pytest.raises(ConfigurationError, match=re.escape(says)):
        client.send_many(items)  # type: ignore[arg-type]
    assert server.requests == []
