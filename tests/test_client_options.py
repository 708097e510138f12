"""Per-request options, ``with_options`` copies, policy/knob conflicts, and proxies from the
environment: what openai-python and httpx users expect to be able to write."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from opentrain_async import (
    APIConnectionError,
    APITimeoutError,
    ConfigurationError,
    DeliveryUnknownError,
    OpenTrainClient,
    Pacer,
    RateLimitError,
    RetryPolicy,
)
from opentrain_async._proxy import proxy_from_env
from opentrain_async.testing import FakeOpenTrain, Fault

from .cli_helpers import cli_env, start_cli
from .conftest import make_client


class Waits:
    """A sleep that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    def clock(self) -> float:
        """The clock that goes with this sleep: it moves only by what was waited."""
        return sum(self.waits)


# -- per-request timeout and retries ------------------------------------------------------


@pytest.mark.parametrize(
    "timeout", [0.2, aiohttp.ClientTimeout(sock_read=0.2)], ids=["seconds", "ClientTimeout"]
)
async def test_a_send_s_own_timeout_applies_to_that_call(
    server: FakeOpenTrain, timeout: float | aiohttp.ClientTimeout
) -> None:
    """``send_message(..., timeout=)`` (seconds or an aiohttp.ClientTimeout) bounds that
    call although the client waits 30 s; the next call is back on the client's timeout."""
    conv = server.add_conversation()
    server.inject_fault(Fault.TIMEOUT_AFTER_COMMIT, count=1, delay=30)
    waits = Waits()
    async with make_client(server, timeout=30.0, clock=waits.clock, sleep=waits) as client:
        with pytest.raises(DeliveryUnknownError) as info:
            await client.send_message(conv, "hi", timeout=timeout)
        assert isinstance(info.value.__cause__, APITimeoutError)
        assert (await client.send_message(conv, "again")).content == "again"


ARRIVED: dict[str, asyncio.Event] = {}


@pytest.fixture
async def stalling_api() -> AsyncIterator[str]:
    """A loopback API whose GETs never answer (until the test ends); ``ARRIVED[url]`` is
    set once a request has reached it."""
    released = asyncio.Event()
    arrived = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        arrived.set()
        await released.wait()
        return web.json_response({"messages": [], "nextCursor": None})

    app = web.Application()
    app.router.add_get("/{tail:.*}", stall)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    ARRIVED[url] = arrived
    yield url
    del ARRIVED[url]
    released.set()
    await server.close()


async def test_a_read_s_own_timeout_and_retry_budget(stalling_api: str) -> None:
    """``read_messages(..., timeout=0.1, max_retries=1)``: two attempts of 0.1 s, then
    APITimeoutError, on a client whose own budget is 30 s and five retries."""
    waits = Waits()
    async with OpenTrainClient("ot_pat_x", stalling_api, clock=waits.clock, sleep=waits) as client:
        with pytest.raises(APITimeoutError):
            await client.read_messages("c1", timeout=0.1, max_retries=1)
        assert client.stats.requests == 2
        assert len(waits.waits) == 1
        with pytest.raises(APITimeoutError):
            await client.iter_messages("c1", timeout=0.1, max_retries=0).__anext__()
        assert client.stats.requests == 3


async def test_a_send_s_own_retry_budget(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """``max_retries=1`` on one send: the third 429 is raised; the client's default budget
    (5) still applies to the next send."""
    conv = server.add_conversation()
    server.throttle_next(3, retry_after=0.01)
    with pytest.raises(RateLimitError):
        await client.send_message(conv, "hi", max_retries=1)
    assert len(server.sends) == 2
    assert (await client.send_message(conv, "hi")).content == "hi"
    assert len(server.sends) == 4  # one more 429, then the send


# -- with_options ---------------------------------------------------------------------


async def test_with_options_shares_session_pacer_and_concurrency(server: FakeOpenTrain) -> None:
    """A copy from ``with_options`` uses the parent's session, pacer and semaphore: with
    max_concurrency=1, parent and copy together never have two requests on the wire."""
    conv = server.add_conversation()
    server.latency = 0.01
    parent = make_client(server, max_concurrency=1)
    quick = parent.with_options(timeout=10, max_retries=0)  # made before the session exists
    async with parent:
        await asyncio.gather(
            *(c.send_message(conv, f"m{i}") for i, c in enumerate([parent, quick] * 5))
        )
        assert quick.pacer is parent.pacer
        assert quick._pipeline.ensure_session() is parent._pipeline.ensure_session()
        assert quick.retry_policy.max_retries == 0
        assert parent.retry_policy.max_retries == 5
    assert len(server.messages(conv)) == 10
    assert server.peak_in_flight == 1
    assert parent.stats.requests == 10  # one set of counters


async def test_closing_a_copy_leaves_the_parent_open(server: FakeOpenTrain) -> None:
    """``async with client.with_options(...)`` closes the copy only; closing the parent
    closes the session under every copy."""
    conv = server.add_conversation()
    async with make_client(server) as parent:
        async with parent.with_options(timeout=5) as copy:
            await copy.send_message(conv, "from the copy")
        await parent.send_message(conv, "parent still open")
        other = parent.with_options(max_retries=1)
    with pytest.raises(ConfigurationError, match="closed"):
        await other.send_message(conv, "too late")
    assert [m["content"] for m in server.messages(conv)] == ["from the copy", "parent still open"]


async def test_with_options_on_a_caller_s_session(server: FakeOpenTrain) -> None:
    """On a session the caller owns, a copy with its own timeout still sends the token."""
    conv = server.add_conversation()
    async with aiohttp.ClientSession() as session:
        parent = make_client(server, session=session)
        message = await parent.with_options(timeout=5).send_message(conv, "hi")
        assert message.content == "hi"
        await parent.close()
        assert not session.closed
    assert server.sends[0].token == server.token


# -- a policy object and the knobs it replaces --------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"retry_policy": RetryPolicy(), "max_retries": 2}, "max_retries"),
        ({"retry_policy": RetryPolicy(), "max_retry_after": 5.0}, "max_retry_after"),
        ({"retry_policy": RetryPolicy(), "on_retry": print}, "on_retry"),
        ({"pacer": Pacer(), "rate_limit": 10.0}, "rate_limit"),
    ],
)
def test_a_policy_with_the_knobs_it_replaces_is_refused(
    options: dict[str, object], named: str
) -> None:
    """Passing ``retry_policy=`` with ``max_retries=`` (or ``pacer=`` with ``rate_limit=``)
    raises instead of silently ignoring the knob."""
    with pytest.raises(ConfigurationError, match=named):
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", **options)  # type: ignore[arg-type]


def test_a_policy_alone_and_knobs_alone_are_fine() -> None:
    """The policy object alone is used as given; knobs alone build the policy."""
    policy = RetryPolicy(max_retries=1)
    assert (
        OpenTrainClient("ot_pat_opt", "http://127.0.0.1:9", retry_policy=policy).retry_policy
        is policy
    )
    built = OpenTrainClient("ot_pat_opt", "http://127.0.0.1:9", max_retries=2, max_retry_after=3.0)
    assert (built.retry_policy.max_retries, built.retry_policy.max_retry_after) == (2, 3.0)


@pytest.mark.parametrize("timeout", [0, -1, True, "30", float("nan")])
def test_a_bad_timeout_is_refused_naming_it(timeout: object) -> None:
    """``timeout`` must be seconds > 0 or an aiohttp.ClientTimeout."""
    with pytest.raises(ConfigurationError, match="timeout"):
        OpenTrainClient("ot_pat_opt", "http://127.0.0.1:9", timeout=timeout)  # type: ignore[arg-type]


# -- proxies from the environment ------------------------------------------------------------


class ConnectProxy:
    """A loopback HTTP proxy that records CONNECT requests and refuses them."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.headers: list[str] = []
        self.server: asyncio.Server | None = None
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.targets.append(head[0])
        self.headers.extend(head[1:])
        self.connected.set()
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    recorder = ConnectProxy()
    recorder.server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    yield recorder
    recorder.server.close()
    await recorder.server.wait_closed()


API = "https://api.opentrain.test"  # .test never resolves: reaching it proves the proxy


async def test_https_proxy_from_the_environment_is_used(
    proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTPS_PROXY set, requests tunnel through it (CONNECT to the API host), with the
    proxy's credentials from its URL and the token nowhere in what the proxy saw."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", "://user:pw@"))
    async with OpenTrainClient("ot_pat_secret", API, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.send_message("conv_1", "hi")
    assert info.value.reached_server is False  # a refused tunnel: certainly not sent
    assert "proxy refused" in str(info.value)
    assert proxy.targets == ["CONNECT api.opentrain.test:443 HTTP/1.1"]
    assert "Proxy-Authorization: Basic dXNlcjpwdw==" in proxy.headers
    assert not any("ot_pat_secret" in h for h in proxy.headers)


@pytest.mark.parametrize(
    "env",
    [
        {"HTTPS_PROXY": "{proxy}", "NO_PROXY": "opentrain.test"},
        {"https_proxy": "{proxy}", "no_proxy": "localhost, .opentrain.test"},
        {"HTTPS_PROXY": "{proxy}", "NO_PROXY": "*"},
        {"HTTP_PROXY": "{proxy}"},  # for http:// URLs only
    ],
)
async def test_no_proxy_and_other_schemes_go_direct(
    proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """NO_PROXY (suffixes, lists, ``*``) bypasses the proxy, as does a proxy for the other
    scheme: the request goes direct (and fails to resolve the .test host)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(proxy=proxy.url))
    async with OpenTrainClient("ot_pat_x", API, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.send_message("conv_1", "hi")
    assert info.value.reached_server is False
    assert proxy.targets == []


async def test_trust_env_false_ignores_the_proxy(
    proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trust_env=False`` opts out: HTTPS_PROXY is not used."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    async with OpenTrainClient("ot_pat_x", API, max_retries=0, trust_env=False) as client:
        with pytest.raises(APIConnectionError):
            await client.send_message("conv_1", "hi")
    assert proxy.targets == []


async def test_loopback_is_never_proxied(
    server: FakeOpenTrain, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy in the shell does not capture a local server (the fake one, in tests)."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    conv = server.add_conversation()
    async with make_client(server) as client:
        assert (await client.send_message(conv, "hi")).content == "hi"
    assert proxy.targets == []


@pytest.mark.process
async def test_cli_honours_https_proxy(proxy: ConnectProxy, tmp_path: Path) -> None:
    """``opentrain-async send`` goes through HTTPS_PROXY too (stopped once the proxy saw it:
    a refused tunnel is then retried as a connection failure)."""
    env = cli_env(None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL=API)
    env["HTTPS_PROXY"] = proxy.url
    process = await start_cli("send", "conv_1", "hi", env=env)
    try:
        await asyncio.wait_for(proxy.connected.wait(), timeout=60)
    finally:
        process.kill()
        await process.communicate()
    assert proxy.targets[0] == "CONNECT api.opentrain.test:443 HTTP/1.1"
    assert not any("ot_pat_cli" in h for h in proxy.headers)


async def test_in_flight_counts_the_copies_requests(stalling_api: str) -> None:
    """``client.in_flight`` (what progress displays show) includes requests a
    ``with_options`` copy has on the wire."""
    async with OpenTrainClient("ot_pat_x", stalling_api) as client:
        copy = client.with_options(timeout=30)
        task = asyncio.create_task(copy.read_messages("c1"))
        await asyncio.wait_for(ARRIVED[stalling_api].wait(), timeout=30)
        assert (client.in_flight, copy.in_flight) == (1, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.in_flight == 0


@pytest.mark.parametrize(
    ("root", "env", "expected"),
    [
        ("https://api.example.com/x", {"HTTPS_PROXY": "proxy:3128"}, "http://proxy:3128"),
        ("https://api.example.com/x", {"ALL_PROXY": "http://p:1"}, "http://p:1"),
        (
            "https://api.example.com/x",
            {"https_proxy": "http://a:1", "HTTPS_PROXY": "http://b:1"},
            "http://a:1",
        ),
        ("http://10.1.2.3:8080/x", {"HTTP_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, None),
        (
            "http://10.1.2.3:8080/x",
            {"HTTP_PROXY": "http://p:1", "NO_PROXY": "192.168.0.0/16"},
            "http://p:1",
        ),
        (
            "https://api.example.com/x",
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com:443"},
            None,
        ),
        (
            "https://api.example.com/x",
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "ample.com"},
            "http://p:1",
        ),
        ("http://10.1.2.3/x", {"HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"}, None),
        ("http://10.1.2.3/x", {"http_proxy": "http://p:1", "REQUEST_METHOD": "GET"}, "http://p:1"),
        ("https://api.example.com/x", {"HTTPS_PROXY": "https://p:1"}, "https://p:1"),
        ("https://[::1]:8443/x", {"HTTPS_PROXY": "http://p:1"}, None),
        ("https://api.example.com/x", {}, None),
    ],
)
def test_proxy_resolution_from_the_environment(
    root: str, env: dict[str, str], expected: str | None
) -> None:
    """Which proxy a client uses, as curl and requests read the variables: lower case
    first, NO_PROXY as suffixes, ports and CIDRs, no upper-case HTTP_PROXY under CGI
    (httpoxy), http:// and https:// proxies, loopback never (other schemes raise: see
    test_surface_seams)."""
    proxy = proxy_from_env(root, env)
    assert (None if proxy is None else str(proxy.url)) == expected


def test_proxy_credentials_are_decoded_and_never_shown() -> None:
    """user:pass@ in the proxy URL becomes a Proxy-Authorization value (percent-decoded);
    the repr shows neither."""
    proxy = proxy_from_env("https://api.example.com", {"HTTPS_PROXY": "http://us%40r:p%3Aw@p:1"})
    assert proxy is not None
    assert proxy.authorization == "Basic " + base64.b64encode(b"us@r:p:w").decode()
    assert "p%3Aw" not in repr(proxy)
    assert "p:w" not in repr(proxy)
    assert str(proxy.url) == "http://p:1"


async def test_a_copy_s_reads_use_the_copy_s_options(stalling_api: str) -> None:
    """Reads on a ``with_options`` copy go through the copy's pipeline (its timeout and
    retry budget), not the parent's 30 s and five retries."""
    waits = Waits()
    async with OpenTrainClient("ot_pat_x", stalling_api, clock=waits.clock, sleep=waits) as client:
        quick = client.with_options(timeout=0.1, max_retries=0)
        with pytest.raises(APITimeoutError):
            await quick.read_messages("c1")
        with pytest.raises(APITimeoutError):
            await quick.iter_conversations().__anext__()
        assert client.stats.requests == 2
