"""Hostile servers and careless input, over real loopback servers (issue 10).

Each scenario provokes one failure, asserts the typed error it must be, and returns the
exceptions it caught.  ``test_scenario`` runs them one by one; ``test_no_exception_chain
_holds_a_secret`` runs them all and walks every exception's ``__cause__``/``__context__``
chain (and attributes: aiohttp's errors keep the request headers) for the token or a
base URL password, as error reporters such as Sentry would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    APIConnectionError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    OpenTrainClient,
    OpenTrainError,
    RateLimitError,
    RedirectError,
    RetryEvent,
    RetryPolicy,
    UnexpectedResponseError,
    parse_webhook_event,
)
from opentrain_async._client import MAX_RESPONSE_BYTES
from opentrain_async.testing import FakeTime

from .loopback import stamp

TOKEN = "ot_pat_hostile_S3CRET_9f2c41"
PASSWORD = "pa55-S3CRET-word"
SECRETS = (TOKEN, PASSWORD)
MESSAGE = {
    "ok": True,
    "message": {
        "id": "msg_elsewhere",
        "conversationId": "conv_1",
        "senderUserId": "u_1",
        "content": "hi",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "isFromViewer": True,
    },
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Origin:
    """A loopback HTTP server whose answers a scenario scripts; it records every request."""

    def __init__(self) -> None:
        self.handler: Handler = self.message
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.requests.append((request.method, request.raw_path, dict(request.headers)))
        return await self.handler(request)

    async def message(self, request: web.Request) -> web.StreamResponse:
        """The message sent (its conversation and content echoed, as a server does)."""
        return web.json_response(await echoed(request), status=201)


async def echoed(request: web.Request) -> dict[str, Any]:
    """``MESSAGE`` with the POSTed conversation and content (a 2xx must describe them)."""
    try:
        sent = json.loads(await request.read())
        fields = {"conversationId": sent["conversationId"], "content": sent["content"]}
    except (ValueError, KeyError, TypeError):
        fields = {}
    return {**MESSAGE, "message": {**MESSAGE["message"], "createdAt": stamp(), **fields}}


@attrs.define
class Arena:
    """The hostile API server, another origin it redirects to, and scenario helpers."""

    hostile: Origin
    elsewhere: Origin
    raw_answers: list[bytes] = attrs.field(factory=list)
    raw_url: str = ""

    def client(self, **options: Any) -> OpenTrainClient:
        if "retry_policy" not in options:  # a policy with max_retries= is refused
            options.setdefault("max_retries", 0)
        return OpenTrainClient(TOKEN, self.hostile.url, env={}, **options)


@contextlib.asynccontextmanager
async def open_arena() -> AsyncIterator[Arena]:
    """Start both origins and a raw TCP server (for answers aiohttp.web cannot write)."""
    servers: list[TestServer] = []
    origins = Origin(), Origin()
    for origin in origins:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", origin.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        origin.url = f"http://127.0.0.1:{server.port}"
        servers.append(server)
    arena = Arena(*origins)

    async def raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(arena.raw_answers.pop(0))
        await writer.drain()
        writer.close()

    raw_server = await asyncio.start_server(raw, "127.0.0.1", 0)
    arena.raw_url = f"http://127.0.0.1:{raw_server.sockets[0].getsockname()[1]}"
    try:
        yield arena
    finally:
        raw_server.close()
        await raw_server.wait_closed()
        for server in servers:
            await server.close()


@pytest.fixture
async def arena() -> AsyncIterator[Arena]:
    async with open_arena() as arena:
        yield arena


async def caught(
    action: Awaitable[Any], kind: type[BaseException] = OpenTrainError
) -> BaseException:
    """Await ``action``; return the exception it raised, which must be a ``kind``."""
    with pytest.raises(kind) as info:
        await action
    return info.value


Scenario = Callable[[Arena], Awaitable[list[BaseException]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


def redirect_to(location: str, status: int) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return answer


# -- redirects ---------------------------------------------------------------------------


async def _send_redirected(arena: Arena, status: int) -> list[BaseException]:
    """A redirected send is a RedirectError saying where and that nothing was delivered."""
    target = f"{arena.elsewhere.url}/api/public/v1/messages"
    arena.hostile.handler = redirect_to(target, status)
    async with arena.client(reconcile=True) as client:
        error = await caught(client.send_message("conv_1", "secret plans"), RedirectError)
    assert isinstance(error, RedirectError)
    assert error.status == status
    assert error.location == target
    assert target in str(error)
    assert "not delivered" in str(error)
    assert arena.elsewhere.requests == []  # neither re-posted nor turned into a GET there
    assert [m for m, _, _ in arena.hostile.requests] == ["POST"]  # no read-back, no resend
    return [error]


for _status in (301, 302, 303, 307, 308):

    async def _redirected(arena: Arena, status: int = _status) -> list[BaseException]:
        return await _send_redirected(arena, status)

    _redirected.__name__ = f"send_redirected_{_status}"
    scenario(_redirected)


@scenario
async def read_redirected(arena: Arena) -> list[BaseException]:
    """A redirected GET is a RedirectError too (no 'delivered' wording), never followed."""
    arena.hostile.handler = redirect_to(f"{arena.elsewhere.url}/x", 302)
    async with arena.client() as client:
        error = await caught(client.list_conversations(), RedirectError)
    assert "delivered" not in str(error)
    assert arena.elsewhere.requests == []
    return [error]


@scenario
async def redirect_location_with_credentials_is_shown_without_them(
    arena: Arena,
) -> list[BaseException]:
    """A Location carrying user:password@ is named without them."""
    arena.hostile.handler = redirect_to(f"http://someone:{PASSWORD}@example.com/x", 307)
    async with arena.client() as client:
        error = await caught(client.whoami(), RedirectError)
    assert isinstance(error, RedirectError)
    assert error.location == "http://***@example.com/x"
    return [error]


# -- answers that used to escape as raw exceptions ---------------------------------------


@scenario
async def retry_hint_of_400_digits(arena: Arena) -> list[BaseException]:
    """A 429 whose retryAfterSeconds has 400 digits is a RateLimitError without a hint."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = '{"error": "slow down", "code": "RATE_LIMITED", "details": {"retryAfterSeconds": '
        return web.Response(status=429, text=body + "9" * 400 + "}}")

    arena.hostile.handler = answer
    async with arena.client() as client:
        error = await caught(client.send_message("conv_1", "hi"), RateLimitError)
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None
    return [error]


def deep_json(depth: int) -> str:
    return '{"error": ' + "[" * depth + "]" * depth + "}"


@scenario
async def deeply_nested_bodies(arena: Arena) -> list[BaseException]:
    """JSON nested 100,000 deep is unreadable, not RecursionError: a 500 stays an
    InternalServerError, a 200 is an UnexpectedResponseError."""
    errors: list[BaseException] = []
    for status, kind in [(500, InternalServerError), (200, UnexpectedResponseError)]:

        async def answer(request: web.Request, status: int = status) -> web.StreamResponse:
            return web.Response(status=status, text=deep_json(100_000))

        arena.hostile.handler = answer
        async with arena.client() as client:
            errors.append(await caught(client.whoami(), kind))
    return errors


@scenario
async def session_that_raises_for_status(arena: Arena) -> list[BaseException]:
    """A caller's session with raise_for_status=True: a 409 is one ConflictError, one POST."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"error": "read only", "code": "CONFLICT", "details": {"reason": "read_only"}}
        return web.json_response(body, status=409)

    arena.hostile.handler = answer
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        arena.client(session=session, max_retries=3, reconcile=True) as client,
    ):
        error = await caught(client.send_message("conv_1", "hi"), ConflictError)
    assert isinstance(error, ConflictError)
    assert error.reason == "read_only"
    assert len(arena.hostile.requests) == 1
    return [error]


@scenario
async def session_that_raises_for_status_meets_a_redirect(arena: Arena) -> list[BaseException]:
    """A caller's session still never follows a redirect."""
    arena.hostile.handler = redirect_to(f"{arena.elsewhere.url}/api/public/v1/messages", 307)
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        arena.client(session=session) as client,
    ):
        error = await caught(client.send_message("conv_1", "hi"), RedirectError)
    assert arena.elsewhere.requests == []
    return [error]


@scenario
async def a_closed_session_of_the_caller(arena: Arena) -> list[BaseException]:
    """A caller's session closed under the client is a ConfigurationError, not RuntimeError."""
    session = aiohttp.ClientSession()
    await session.close()
    client = arena.client(session=session)
    entering = await caught(client.__aenter__(), ConfigurationError)
    error = await caught(client.send_message("conv_1", "hi"), ConfigurationError)
    assert "session= is closed" in str(error)
    assert arena.hostile.requests == []
    return [entering, error]


@scenario
async def bad_status_line(arena: Arena) -> list[BaseException]:
    """A garbled status line is an APIConnectionError (aiohttp's error, headers and all,
    is not attached)."""
    arena.raw_answers.append(b"HTTP/1.1 abc nonsense\r\n\r\n")
    async with OpenTrainClient(TOKEN, arena.raw_url, env={}, max_retries=0) as client:
        error = await caught(client.whoami(), APIConnectionError)
    assert error.__context__ is None
    return [error]


@scenario
async def bad_status_line_on_a_send(arena: Arena) -> list[BaseException]:
    """On a send the same garbage is an unknown outcome; its cause is clean too."""
    arena.raw_answers.append(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")
    async with OpenTrainClient(TOKEN, arena.raw_url, env={}, max_retries=0) as client:
        error = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    assert isinstance(error, DeliveryUnknownError)
    assert isinstance(error.__cause__, APIConnectionError)
    return [error]


@scenario
async def garbage_until_the_retry_budget_ends(arena: Arena) -> list[BaseException]:
    """A GET retried through the policy (tenacity) ends in a clean APIConnectionError."""
    arena.raw_answers += [b"HTTP/1.1 abc nonsense\r\n\r\n"] * 5
    time = FakeTime()
    async with OpenTrainClient(
        TOKEN, arena.raw_url, env={}, max_retries=2, clock=time.clock, sleep=time.sleep
    ) as client:
        error = await caught(client.whoami(), APIConnectionError)
    assert len(time.sleeps) == 2
    return [error]


@scenario
async def gateway_errors_until_the_retry_budget_ends(arena: Arena) -> list[BaseException]:
    """Retried 502s end in an InternalServerError; the retry events carry clean errors too."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")

    arena.hostile.handler = answer
    events: list[RetryEvent] = []
    policy = RetryPolicy(max_retries=2, sleep=_no_wait, on_retry=events.append)
    async with arena.client(retry_policy=policy) as client:
        error = await caught(client.whoami(), InternalServerError)
    assert len(arena.hostile.requests) == 3
    return [error, *(event.error for event in events)]


async def _no_wait(seconds: float) -> None:
    return None


# -- bounded bodies ---------------------------------------------------------------------


@attrs.define
class Stream:
    """What a streaming handler got out before the client hung up (or it finished)."""

    written: int = 0
    finished: asyncio.Event = attrs.field(factory=asyncio.Event)


def streaming(
    total: int, *, status: int = 200, declared: bool = False, piece: bytes = b" " * 262_144
) -> tuple[Handler, Stream]:
    """A handler streaming ``total`` bytes in pieces, counting what got out."""
    stream = Stream()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
        if declared:
            response.content_length = total
        await response.prepare(request)
        try:
            while stream.written < total:
                chunk = piece[: total - stream.written]
                await response.write(chunk)
                stream.written += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        finally:
            stream.finished.set()
        return response

    return answer, stream


@scenario
async def oversized_success_body(arena: Arena) -> list[BaseException]:
    """A chunked 200 beyond max_response_bytes is an UnexpectedResponseError naming the cap."""
    arena.hostile.handler, _ = streaming(3_000_000)
    async with arena.client(max_response_bytes=1_000_000) as client:
        error = await caught(client.whoami(), UnexpectedResponseError)
    assert "1,000,000 bytes" in str(error)
    assert "max_response_bytes" in str(error)
    return [error]


@scenario
async def oversized_send_answer_is_an_unknown_outcome(arena: Arena) -> list[BaseException]:
    """A 201 too large to read on a send was probably committed: DeliveryUnknownError."""
    arena.hostile.handler, _ = streaming(3_000_000, status=201, declared=True)
    async with arena.client(max_response_bytes=1_000_000) as client:
        error = await caught(client.send_message("conv_1", "hi"), DeliveryUnknownError)
    assert isinstance(error, DeliveryUnknownError)
    assert isinstance(error.__cause__, UnexpectedResponseError)
    return [error]


@scenario
async def oversized_error_body_keeps_its_status(arena: Arena) -> list[BaseException]:
    """A 409 with a huge body is still a ConflictError (terminal), its message naming the cap."""
    arena.hostile.handler, _ = streaming(3_000_000, status=409)
    async with arena.client(max_response_bytes=1_000_000) as client:
        error = await caught(client.send_message("conv_1", "hi"), ConflictError)
    assert "max_response_bytes" in str(error)
    return [error]


@scenario
async def fifty_megabytes_under_the_default_cap(arena: Arena) -> list[BaseException]:
    """With the default cap a 50 MB answer is refused; the client stops reading at the cap."""
    total = 50 * 1024 * 1024
    arena.hostile.handler, stream = streaming(total, declared=True)
    async with arena.client() as client:
        error = await caught(client.whoami(), UnexpectedResponseError)
        assert f"{MAX_RESPONSE_BYTES:,} bytes" in str(error)
        # The server could not push the whole body: the client hung up past the cap
        # (plus what socket buffers held), not at the end.
        await asyncio.wait_for(stream.finished.wait(), 30)
    assert MAX_RESPONSE_BYTES < stream.written < 2 * MAX_RESPONSE_BYTES
    return [error]


# -- bad input ---------------------------------------------------------------------------


@scenario
async def lone_surrogates_are_refused_locally(arena: Arena) -> list[BaseException]:
    """Content, conversation ids and cursors with a lone surrogate: InvalidRequestError naming
    the field, and no request at all (reads would otherwise drop it and read another)."""
    errors: list[BaseException] = []
    async with arena.client() as client:
        for action, field in [
            (client.send_message("conv_1", "bad \udcff byte"), "content"),
            (client.send_message("conv_\ud800", "hi"), "conversationId"),
            (client.read_messages("conv_1\udcff"), "conversationId"),
            (client.list_conversations(cursor="c\ud800"), "cursor"),
            (client.start_proposal_conversation("p\udcff"), "proposalId"),
        ]:
            error = await caught(action, InvalidRequestError)
            assert isinstance(error, InvalidRequestError)
            assert error.field == field
            assert "lone surrogate" in str(error)
            errors.append(error)
    assert arena.hostile.requests == []
    return errors


@scenario
async def dot_segment_proposal_ids(arena: Arena) -> list[BaseException]:
    """Proposal ids '.' and '..' are refused; others are quoted as one whole segment."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"ok": True, "conversationId": "c1", "proposalId": "x", "created": True}
        return web.json_response(body)

    arena.hostile.handler = answer
    errors: list[BaseException] = []
    async with arena.client() as client:
        for bad in (".", ".."):
            error = await caught(client.start_proposal_conversation(bad), InvalidRequestError)
            assert isinstance(error, InvalidRequestError)
            assert error.field == "proposalId"
            errors.append(error)
        assert arena.hostile.requests == []
        await client.start_proposal_conversation("../messages")
        await client.start_proposal_conversation("a/b?c#d")
    assert [path for _, path, _ in arena.hostile.requests] == [
        "/api/public/v1/proposals/..%2Fmessages/conversation",
        "/api/public/v1/proposals/a%2Fb%3Fc%23d/conversation",
    ]
    return errors


@scenario
async def bulk_input_with_a_lone_surrogate(arena: Arena) -> list[BaseException]:
    """In send_many a bad input is its own 'invalid' outcome; the others are sent."""
    async with arena.client() as client:
        report = await client.send_all(
            [("conv_1", "fine"), ("conv_1", "x\udcff"), ("c\ud800", "y")]
        )
    assert report.sent == 1
    assert report.counts["invalid"] == 2
    return [outcome.error for outcome in report.failures if outcome.error is not None]


@scenario
async def base_url_with_a_password(arena: Arena) -> list[BaseException]:
    """A base URL with user:password@ is refused at construction; the password is never shown."""
    url = arena.hostile.url.replace("http://", f"http://me:{PASSWORD}@")
    error = await caught(_construct(TOKEN, url), ConfigurationError)
    assert "***@" in str(error)
    return [error]


@scenario
async def token_with_a_newline(arena: Arena) -> list[BaseException]:
    """A token with CR, LF or NUL inside is refused at construction, without echoing it."""
    errors = []
    for char in "\r\n\0":
        token = TOKEN[:8] + char + TOKEN[8:]
        error = await caught(_construct(token, arena.hostile.url), ConfigurationError)
        assert f"U+{ord(char):04X}" in str(error)
        errors.append(error)
    assert arena.hostile.requests == []
    return errors


@scenario
async def webhook_body_nested_deep(arena: Arena) -> list[BaseException]:
    """A (signed) webhook body nested 100,000 deep is refused as invalid_payload."""
    error = await caught(_sync(parse_webhook_event, deep_json(100_000)))
    return [error]


async def _construct(token: str, base_url: str) -> None:
    OpenTrainClient(token, base_url, env={})


async def _sync(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_scenario(arena: Arena, name: str) -> None:
    """Each hostile answer or bad input becomes the typed error its scenario names."""
    errors = await SCENARIOS[name](arena)
    assert errors
    assert all(isinstance(error, OpenTrainError) for error in errors)


async def test_no_exception_chain_holds_a_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Every exception of every scenario, with its cause/context chain and attributes, and
    every log record, is free of the token and of the base URL password."""
    caplog.set_level(logging.DEBUG, logger="opentrain_async")
    walked: list[BaseException] = []
    for run in SCENARIOS.values():
        async with open_arena() as scene:
            walked.extend(await run(scene))
    assert len(walked) >= len(SCENARIOS)
    for error in walked:
        assert list(find_secrets(error)) == [], error
    for record in caplog.records:
        assert not any(secret in record.getMessage() for secret in SECRETS)


@pytest.mark.parametrize("declared", [True, False])
async def test_an_answer_in_many_pieces_under_the_cap_is_read_whole(
    arena: Arena, declared: bool
) -> None:
    """A valid answer streamed in small pieces (chunked or with a length) is read whole."""
    body = json.dumps({"capabilities": {"messagingWrites": True}, "pad": "x" * 50_000}).encode()

    async def answer(request: web.Request) -> web.StreamResponse:
        # Pieces of 1 KiB: the client sees many reads before the end of the body.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declared:
            response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 1024):
            await response.write(body[start : start + 1024])
            await asyncio.sleep(0)
        return response

    arena.hostile.handler = answer
    async with arena.client(max_response_bytes=len(body)) as client:
        caps = await client.capabilities()
    assert caps.messaging_writes is True


async def test_many_distinct_paths_do_not_grow_the_url_cache(arena: Arena) -> None:
    """Parsed URLs are cached per path, but ids make paths unbounded: the cache stays small."""

    async def answer(request: web.Request) -> web.StreamResponse:
        body = {"ok": True, "conversationId": "c1", "proposalId": "x", "created": False}
        return web.json_response(body)

    arena.hostile.handler = answer
    async with arena.client() as client:
        for i in range(100):
            await client.start_proposal_conversation(f"prop_{i}")
        assert len(client._pipeline._urls) <= 64
    assert len(arena.hostile.requests) == 100


def test_the_walker_finds_a_token_hidden_in_a_context() -> None:
    """The walker is not blind: aiohttp's error, suppressed with ``from None`` but kept as
    ``__context__`` (what the client used to raise), is found through its request headers."""
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {TOKEN}"}))
    info = aiohttp.RequestInfo(URL("http://x/"), "GET", headers, URL("http://x/"))
    try:
        try:
            raise aiohttp.ClientResponseError(info, (), status=400, message="bad")
        except aiohttp.ClientError:
            raise APIConnectionError("connection failed") from None
    except APIConnectionError as exc:
        error = exc
    assert error.__suppress_context__
    assert list(find_secrets(error)) != []


# -- the walker --------------------------------------------------------------------------


def find_secrets(root: object) -> Iterator[str]:
    """Paths under ``root`` (attributes, items, cause and context) whose text has a secret."""
    seen: set[int] = set()
    stack: list[tuple[object, str, int]] = [(root, "error", 0)]
    while stack:
        obj, path, depth = stack.pop()
        if id(obj) in seen or depth > 12:
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes)):
            text = obj if isinstance(obj, str) else obj.decode("latin-1")
            if any(secret in text for secret in SECRETS):
                yield path
            continue
        if obj is None or isinstance(obj, (int, float, bool, type)) or callable(obj):
            continue
        try:
            text = repr(obj)
        except Exception:
            text = ""
        if any(secret in text for secret in SECRETS):
            yield f"repr({path})"
        children: list[tuple[object, str]] = []
        if isinstance(obj, BaseException):
            children += [(str(obj), f"str({path})"), (obj.args, f"{path}.args")]
            children += [(obj.__cause__, f"{path}.__cause__")]
            children += [(obj.__context__, f"{path}.__context__")]
        if hasattr(obj, "items") and callable(obj.items):
            with contextlib.suppress(Exception):  # an object with an odd items()
                children += [(v, f"{path}[{k!r}]") for k, v in list(obj.items())]
                children += [(k, f"{path}.key") for k in list(obj.keys())]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        names = list(getattr(obj, "__dict__", {}))
        for cls in type(obj).__mro__:
            names += [n for n in getattr(cls, "__slots__", ()) if isinstance(n, str)]
        for name in names:
            with contextlib.suppress(Exception):  # an unset slot or a raising property
                children.append((getattr(obj, name), f"{path}.{name}"))
        stack.extend((child, child_path, depth + 1) for child, child_path in children)
