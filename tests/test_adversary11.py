"""Issue 11's promises attacked the way users and servers break them: habits from
openai-python and httpx, careless calls, and a hostile server.  Each test is named for
the promise it defends."""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import math
import pickle
import typing
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BulkReport,
    BulkSend,
    ConfigurationError,
    DeliveryUnknownError,
    InMemoryPacingBackend,
    InvalidRequestError,
    MemoryCursorStore,
    NotAttemptedError,
    OpenTrainClient,
    OpenTrainError,
    Pacer,
    PermissionDeniedError,
    RateLimitError,
    RawResponseClient,
    RetryPolicy,
    SendOutcome,
    UnexpectedResponseError,
    WebhookVerificationError,
    configure_logging_from_env,
)
from opentrain_async._errors import error_from_response
from opentrain_async._pagination import AsyncPaginator
from opentrain_async.testing import FakeOpenTrain, FakeTime, Fault

from .cli_helpers import ROOT, cli_env, run_cli
from .conftest import make_client

# -- proxies from the environment ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "http://user:s3cret@proxy:notaport",
        "http://user:s3cret@proxy:99999",
        "http://[::1",
        "http://user:s3cret@:80",
    ],
)
def test_a_malformed_proxy_variable_is_a_configuration_error(value: str) -> None:
    """A typo in HTTPS_PROXY fails at construction as ConfigurationError naming the
    variable (as httpx refuses it), never as yarl's ValueError, and never echoes the
    proxy's password."""
    with pytest.raises(ConfigurationError, match="HTTPS_PROXY") as info:
        OpenTrainClient("ot_pat_x", "https://api.example.com", env={"HTTPS_PROXY": value})
    assert "s3cret" not in str(info.value)
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_a_malformed_proxy_variable_is_ignored_with_trust_env_false() -> None:
    client = OpenTrainClient(
        "ot_pat_x", "https://api.example.com", env={"HTTPS_PROXY": "http://p:x"}, trust_env=False
    )
    assert client.api_root == "https://api.example.com/api/public/v1"


async def test_the_cli_with_a_malformed_proxy_says_one_line(tmp_path: Path) -> None:
    """``opentrain-async send`` under a broken HTTPS_PROXY: exit 3, one line, no traceback,
    no password."""
    env = cli_env(
        None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL="https://api.example.com"
    )
    env["HTTPS_PROXY"] = "http://user:s3cret@proxy:notaport"
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert "Traceback" not in result.err
    assert "s3cret" not in result.err
    assert "HTTPS_PROXY" in result.err
    assert len(result.err.strip().splitlines()) == 1


# -- errors as openai-python users handle them --------------------------------------------


def _every_kind_of_error() -> list[OpenTrainError]:
    rate_limited = error_from_response(
        429,
        b'{"error":"slow down","code":"RATE_LIMITED","requestId":"req_1",'
        b'"details":{"retryAfterSeconds":2.5}}',
        {},
        method="POST",
        path="/messages",
    )
    forbidden = error_from_response(
        403,
        b'{"error":"no","code":"FORBIDDEN","details":{"reason":"account_claim_required",'
        b'"claimUrl":"https://app.opentrain.ai/claim"}}',
        {"X-Request-Id": "req_2"},
    )
    return [
        rate_limited,
        forbidden,
        error_from_response(502, b"<html>Bad Gateway</html>", {}),
        InvalidRequestError("content too long", field="content", limit="1-10000", actual=10001),
        ConfigurationError("no token"),
        APIConnectionError("refused", reached_server=False, method="POST", path="/messages"),
        APITimeoutError("no answer within 30s"),
        DeliveryUnknownError(
            "maybe sent", cause=rate_limited, conversation_id="c1", started_at=1.0
        ),
        UnexpectedResponseError("not JSON", status=200, request_id="req_3"),
        NotAttemptedError("stopped", cause=forbidden),
        WebhookVerificationError("stale", reason="stale"),
    ]


@pytest.mark.parametrize("error", _every_kind_of_error(), ids=lambda e: type(e).__name__)
def test_every_error_survives_pickle_and_copy(error: OpenTrainError) -> None:
    """The README's arq worker (and multiprocessing, celery) pickle a job's exception;
    openai-python's errors pickle.  Ours come back as the same class with the same text
    and attributes, instead of a TypeError from the keyword-only constructors."""
    pickled = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    for clone in (pickled, copy.copy(error)):
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        for name in ("message", "status", "code", "reason", "request_id", "body"):
            assert getattr(clone, name) == getattr(error, name), name
        assert dict(clone.details) == dict(error.details)
    clone = pickled
    if isinstance(error, RateLimitError):
        assert isinstance(clone, RateLimitError)
        assert (clone.retry_after, clone.status_code) == (2.5, 429)
    if isinstance(error, PermissionDeniedError):
        assert isinstance(clone, PermissionDeniedError)
        assert clone.claim_url == "https://app.opentrain.ai/claim"
    if isinstance(error, InvalidRequestError):
        assert isinstance(clone, InvalidRequestError)
        assert (clone.field, clone.limit, clone.actual) == ("content", "1-10000", 10001)
    if isinstance(error, APIConnectionError):
        assert isinstance(clone, APIConnectionError)
        assert clone.reached_server == error.reached_server


def test_a_status_error_has_openai_s_body() -> None:
    """``except APIStatusError as e: log(e.body)`` (openai-python's habit) reads the
    decoded error answer, or its text when it is not JSON; other errors have None."""
    errors = _every_kind_of_error()
    assert errors[0].body == {
        "error": "slow down",
        "code": "RATE_LIMITED",
        "requestId": "req_1",
        "details": {"retryAfterSeconds": 2.5},
    }
    assert errors[2].body == "<html>Bad Gateway</html>"
    assert error_from_response(503, b"", {}).body is None
    assert all(e.body is None for e in errors[3:])


async def test_body_of_a_server_s_error_never_holds_the_token(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A server (or proxy) that echoes the Authorization header in its error answer: the
    body the caller logs has it masked."""
    conv = server.add_conversation()
    server.script("POST /messages", status=403, json={"error": f"who is Bearer {server.token}?"})
    with pytest.raises(PermissionDeniedError) as info:
        await client.send_message(conv, "hi")
    assert server.token not in repr(info.value.body)
    assert info.value.body == {"error": "who is Bearer ***?"}


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


# -- a closed client, a with_options copy of one --------------------------------------------


@pytest.mark.parametrize("via", ["client", "copy"])
async def test_a_batch_on_a_closed_client_stops_like_a_doomed_batch(
    server: FakeOpenTrain, via: str
) -> None:
    """``send_all`` on a closed client (or a ``with_options`` copy of one): every input is
    accounted for, the first with the ConfigurationError that says why and the rest
    ``not_attempted`` with it as the cause, instead of 500 separate "error" failures."""
    conv = server.add_conversation()
    client = OpenTrainClient(server.token, server.base_url)
    copy_ = client.with_options(timeout=5)
    await client.close()
    sender = client if via == "client" else copy_
    report = await sender.send_all((conv, f"m{i}") for i in range(500))
    assert (report.total, report.sent) == (500, 0)
    kinds = Counter(o.kind for o in report.failures)
    assert kinds["error"] <= 4  # at most the workers already past the check
    assert kinds["error"] + kinds["not_attempted"] == 500
    assert isinstance(report.failures[0].error, ConfigurationError)
    not_attempted = next(o for o in report.failures if o.kind == "not_attempted")
    assert isinstance(not_attempted.error, NotAttemptedError)
    assert isinstance(not_attempted.error.__cause__, ConfigurationError)
    assert "closed" in str(not_attempted.error)
    assert server.sends == []


# -- a hostile server's pagination --------------------------------------------------------


class StuckAPI:
    """A loopback API stuck on one page: every GET answers the same items under a fresh
    cursor (``nextCursor`` of ``blank_cursor`` when set), every send a 502.  After 300 GETs
    it answers 500, so that a walk that does not stop fails instead of hanging."""

    def __init__(self) -> None:
        self.gets = 0
        self.blank_cursor: str | None = None
        self.url = ""

    async def page(self, request: web.Request) -> web.Response:
        self.gets += 1
        if self.gets > 300:
            return web.json_response({"error": "enough"}, status=500)
        cursor = self.blank_cursor if self.blank_cursor is not None else f"c{self.gets}"
        stamp = "2099-01-01T00:00:00.000Z"  # newer than any send: read-back reads on
        if request.path.endswith("/updates"):
            events = [{"id": "1", "type": "proposal.received", "createdAt": stamp, "data": {}}]
            return web.json_response({"events": events, "nextCursor": cursor, "hasMore": True})
        message = {
            "id": "m1",
            "conversationId": "conv_1",
            "createdAt": stamp,
            "content": "stuck",
            "isFromViewer": False,
        }
        key = "conversations" if "conversationId" not in request.query else "messages"
        item = {"id": "conv_1"} if key == "conversations" else message
        return web.json_response({key: [item], "nextCursor": cursor})

    async def send(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>")


@pytest.fixture
async def stuck_api() -> AsyncIterator[StuckAPI]:
    api = StuckAPI()
    app = web.Application()
    app.router.add_get("/{tail:.*}", api.page)
    app.router.add_post("/{tail:.*}", api.send)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    api.url = f"http://127.0.0.1:{server.port}"
    yield api
    await server.close()


WALKS_OF: dict[str, Callable[[OpenTrainClient], AsyncPaginator[Any, Any]]] = {
    "messages": lambda c: c.iter_messages("conv_1"),
    "conversations": lambda c: c.iter_conversations(),
    "updates": lambda c: c.iter_updates(),
}


@pytest.mark.parametrize("kind", sorted(WALKS_OF))
@pytest.mark.parametrize("by_page", [False, True])
async def test_a_server_stuck_on_one_page_cannot_make_a_walk_endless(
    stuck_api: StuckAPI, kind: str, by_page: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """``async for m in client.iter_messages(cid)`` against a server that answers the same
    page under a new cursor every time ends after that page, with a warning, as a cursor
    cycle does; it yielded the same items forever before."""
    async with OpenTrainClient("ot_pat_x", stuck_api.url, max_retries=0) as client:
        walk = WALKS_OF[kind](client)
        with caplog.at_level(logging.WARNING, logger="opentrain_async"):
            if by_page:
                got = [
                    len(page.events if kind == "updates" else getattr(page, kind))
                    async for page in walk.pages()
                ]
            else:
                got = [1 async for _ in walk]
    assert got == [1]
    assert stuck_api.gets == 2
    assert walk.repeated_cursor
    assert "same page again" in caplog.text


async def test_read_back_against_a_stuck_server_is_unknown_at_once(
    stuck_api: StuckAPI, no_wait: FakeTime
) -> None:
    """A send answered 502 is read back; a conversation stuck on one page is "unknown"
    (never "not delivered", never a resend) after two pages, not after 120 s of reading
    the same page."""
    async with OpenTrainClient(
        "ot_pat_x", stuck_api.url, clock=no_wait.clock, sleep=no_wait.sleep, reconcile=True
    ) as client:
        with pytest.raises(DeliveryUnknownError, match="read back"):
            await client.send_message("conv_1", "hello")
    assert stuck_api.gets == 2


@pytest.mark.parametrize("blank", ["", "  "])
async def test_a_blank_next_cursor_is_the_last_page(stuck_api: StuckAPI, blank: str) -> None:
    """``nextCursor: ""`` (the spec says null) ends an ``iter_*`` walk; it used to be
    passed back and refused as the caller's own bad ``cursor`` (InvalidRequestError).
    The page still shows what the server said."""
    stuck_api.blank_cursor = blank
    async with OpenTrainClient("ot_pat_x", stuck_api.url) as client:
        assert (await client.read_messages("conv_1")).next_cursor == blank
        assert [m.id async for m in client.iter_messages("conv_1")] == ["m1"]
        assert [e.id async for e in client.iter_updates()] == ["1"]


# -- per-call options where the README promises them ----------------------------------------


@pytest.fixture
async def silent_api() -> AsyncIterator[str]:
    """A loopback API that never answers (until the test ends)."""
    released = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", stall)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}"
    released.set()
    await server.close()


async def test_preflight_takes_a_timeout_like_every_read(silent_api: str) -> None:
    """The README: ``timeout=`` and ``max_retries=`` work on every read, ``preflight()``
    included (it was a TypeError)."""
    async with OpenTrainClient("ot_pat_x", silent_api, timeout=30) as client:
        with pytest.raises(APITimeoutError):
            await client.preflight(timeout=0.2, max_retries=0)


async def test_a_batch_and_a_bot_loop_take_options_from_with_options(server: FakeOpenTrain) -> None:
    """The README's way for a batch: ``client.with_options(timeout=...).send_all(...)``;
    the copy's timeout bounds each send (a send that stalls after commit is reconciled
    by read-back, not waited out for the client's 30 s)."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    async with make_client(server, timeout=30, reconcile_delay=0) as client:
        report = await client.with_options(timeout=0.3).send_all([(conv, "a"), (conv, "b")])
        assert (report.sent, report.reconciled) == (2, 1)
        server.add_incoming_message(conv, "ping")
        bot = client.with_options(timeout=5).listen(store=MemoryCursorStore(), start="beginning")
        assert (await anext(bot)).content == "ping"
    assert server.stats()["duplicates"] == 0


async def test_a_doomed_batch_s_not_attempted_outcomes_chain_the_refusal(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """What the README tells a bulk job to read: a 401 stops the batch and every later
    outcome's ``NotAttemptedError.__cause__`` is that refusal (the README said ``.cause``,
    which issue 11 removed: an AttributeError in the job's reporting code)."""
    convs = [server.add_conversation() for _ in range(20)]
    server.script("POST /messages", status=401, times=1000)
    report = await client.send_all(((c, "hi") for c in convs), concurrency=1)
    assert report.counts["unauthorized"] == 1
    assert report.counts["not_attempted"] == 19
    not_attempted = [o.error for o in report.failures if o.kind == "not_attempted"]
    assert all(isinstance(e, NotAttemptedError) for e in not_attempted)
    assert all(isinstance(e.__cause__, AuthenticationError) for e in not_attempted)
    assert not hasattr(not_attempted[0], "cause")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`.cause`" not in readme


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


# -- request ids a hostile server chose ------------------------------------------------------

HOSTILE_ID = b"\x1b]0;PWNED\x07\x1b[31mRED"


@pytest.fixture
async def throttling_socket() -> AsyncIterator[str]:
    """A raw loopback server answering every request 429 (retry after 10 ms) with a
    request id holding terminal controls (an OSC retitle, BEL, a colour)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"error":"slow","details":{"retryAfterSeconds":0.01}}'
        writer.write(
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
            b"X-Request-Id: "
            + HOSTILE_ID
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("opentrain_log", [None, "info"])
async def test_the_cli_never_prints_a_request_id_s_terminal_controls(
    throttling_socket: str, tmp_path: Path, opentrain_log: str | None
) -> None:
    """``opentrain-async send`` retrying 429s quotes the server's request id in its
    "retrying in ..." line (and, with OPENTRAIN_LOG=info, in the SDK's log line): escaped,
    never raw (it printed ESC and BEL, retitling the user's terminal)."""
    env = cli_env(None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL=throttling_socket)
    if opentrain_log:
        env["OPENTRAIN_LOG"] = opentrain_log
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 1
    assert "retrying in" in result.err
    assert "\x1b" not in result.err
    assert "\x07" not in result.err
    assert "\\x1b]0;PWNED\\x07" in result.out + result.err  # shown, as text


def test_opentrain_log_s_handler_escapes_what_a_server_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The stderr handler ``OPENTRAIN_LOG`` installs in an application: a request id with
    a newline and an escape cannot forge a log line or drive the terminal."""
    logger = logging.getLogger("opentrain_async")
    level, handlers = logger.level, logger.handlers[:]
    logger.handlers.clear()
    try:
        configure_logging_from_env({"OPENTRAIN_LOG": "info"})
        logger.info("retrying (request_id=%s)", "a\nFAKE 2026 CRITICAL pwned\x1b[2J")
    finally:
        logger.setLevel(level)
        logger.handlers[:] = handlers
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "\x1b" not in err
    assert "request_id=a\\nFAKE 2026 CRITICAL pwned\\x1b[2J" in err


@pytest.mark.parametrize("json_flag", [False, True], ids=["summary", "json"])
async def test_bulk_s_failure_lines_never_print_the_server_s_terminal_controls(
    server: FakeOpenTrain, tmp_path: Path, json_flag: bool
) -> None:
    """``opentrain-async bulk``'s "not delivered:" lines quote the server's message,
    reason and request id: escaped (they printed ESC/BEL raw: a 409 could retitle and
    clear the terminal of whoever ran the job)."""
    convs = [server.add_conversation() for _ in range(3)]
    server.script(
        "POST /messages",
        status=409,
        json={
            "error": "blocked \x1b]0;PWNED\x07\x1b[2J",
            "code": "CONFLICT",
            "requestId": "rid\x1b[31m",
            "details": {"reason": "odd\x1b[5m"},
        },
        times=3,
    )
    job = tmp_path / "job.jsonl"
    job.write_text("".join(f'{{"conversationId": "{c}", "content": "hi"}}\n' for c in convs))
    args = ["bulk", str(job), "--no-journal", *(["--json"] if json_flag else [])]
    result = await run_cli(*args, env=cli_env(server, tmp_path))
    assert result.code == 1
    for control in ("\x1b", "\x07"):
        assert control not in result.out + result.err
    assert "\\x1b]0;PWNED\\x07" in result.out + result.err  # shown, as text


async def test_worker_tasks_can_share_one_paginator(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Three workers each running ``async for m in walk`` over one ``iter_messages``: every
    message goes to exactly one of them (two raised "anext(): asynchronous generator is
    already running", a RuntimeError, while the third was fetching a page)."""
    conv = server.add_conversation()
    for i in range(45):
        server.add_incoming_message(conv, f"m{i}")
    walk = client.iter_messages(conv, limit=10)
    seen: list[str] = []

    async def worker() -> None:
        async for message in walk:
            seen.append(message.content)
            await asyncio.sleep(0)

    await asyncio.gather(worker(), worker(), worker())
    assert sorted(seen) == sorted(f"m{i}" for i in range(45))


@pytest.mark.parametrize("verbose", [[], ["-v"]], ids=["plain", "-v"])
async def test_opentrain_log_switches_the_cli_s_logging_on_once(
    server: FakeOpenTrain, tmp_path: Path, verbose: list[str]
) -> None:
    """``OPENTRAIN_LOG=debug opentrain-async send ...``: each request logged once with its
    request id (the CLI silenced it without -v, and printed every line twice with -v)."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path, OPENTRAIN_LOG="debug")
    result = await run_cli("send", *verbose, conv, "hi", env=env)
    assert result.code == 0, result.err
    assert result.err.count("POST /messages -> 201") == 1
    assert server.token not in result.err


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


async def test_an_error_keeps_at_most_8_kib_of_a_huge_error_page(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A proxy's 2 MB error page on every send: each failure a batch keeps (up to 1,000)
    holds 8 KiB of it as ``body``, not the whole page (a GB for a bad day)."""
    conv = server.add_conversation()
    page = "<html>" + "x" * 2_000_000 + "</html>"
    server.script("POST /messages", status=403, body=page, content_type="text/html", times=2)
    report = await client.send_all([(conv, "a"), (conv, "b")], on_failure="continue")
    assert report.counts["forbidden"] == 2
    for outcome in report.failures:
        assert outcome.error is not None
        body = outcome.error.body
        assert isinstance(body, str)
        assert body.startswith("<html>xxx")
        assert body.endswith("...")
        assert len(body) <= 8192 + 3


def _classes_in(annotation: object) -> Iterator[type]:
    for arg in typing.get_args(annotation):
        yield from _classes_in(arg)
    origin = typing.get_origin(annotation) or annotation
    if isinstance(origin, type) and origin.__module__.startswith("opentrain_async"):
        yield origin


def test_every_type_a_public_method_takes_or_returns_is_exported() -> None:
    """mypy --strict users annotate what they hold (``walk: AsyncPaginator[MessagePage,
    Message] = client.iter_messages(cid)``, a helper returning one): every SDK type in a
    public signature imports from ``opentrain_async`` (``AsyncPaginator`` did not)."""
    import opentrain_async

    for owner in (OpenTrainClient, RawResponseClient, BulkSend, BulkReport, SendOutcome):
        for name, member in inspect.getmembers(owner):
            target = member.fget if isinstance(member, property) else member
            if name.startswith("_") or not callable(target):
                continue
            for annotation in typing.get_type_hints(target).values():
                for cls in _classes_in(annotation):
                    assert cls.__name__ in opentrain_async.__all__, f"{owner.__name__}.{name}"
                    assert getattr(opentrain_async, cls.__name__) is cls


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
