"""The client's seams attacked as users misuse them: a sleep without its clock, a pacer
with its own clock, the paginator awaited as in openai-python, a proxy the SDK cannot
use.  Each test is named for the promise it defends."""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import aiohttp.connector
import pytest

from opentrain_async import (
    APIConnectionError,
    ConfigurationError,
    ConversationPage,
    EventPage,
    MessagePage,
    OpenTrainClient,
    Pacer,
)
from opentrain_async._proxy import proxy_from_env
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .cli_helpers import assert_one_line_error, cli_env, run_cli

# -- clock and sleep come together ----------------------------------------------------------


@pytest.mark.parametrize("given", ["sleep", "clock"])
def test_a_sleep_without_its_clock_is_refused(given: str) -> None:
    """A fake sleep on the real clock never lets a long wait end (the pacer would spin
    through a 30 s hint in real time), and a fake clock with a real sleep never moves:
    passing one without the other is refused, naming both and the testing kit."""
    fake = FakeTime()
    options = {"sleep": fake.sleep} if given == "sleep" else {"clock": fake.clock}
    with pytest.raises(ConfigurationError, match=r"clock=.*sleep=") as info:
        OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", **options)
    assert "FakeTime" in str(info.value)


def test_a_real_sleep_may_come_with_the_real_clock() -> None:
    """A sleep that really waits (a wrapper over asyncio.sleep) is fine when the real
    clock is named with it."""

    async def logged_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    client = OpenTrainClient(
        "ot_pat_x", "http://127.0.0.1:9", clock=time.monotonic, sleep=logged_sleep
    )
    assert client.pacer is not None


async def test_a_long_hint_passes_in_fake_time_on_the_shared_fixture(
    server: FakeOpenTrain, client: OpenTrainClient, no_wait: FakeTime
) -> None:
    """The repo's own ``client`` fixture: a 30 s Retry-After is waited in fake time by
    the retry and the pacer alike, and the send then succeeds."""
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=30)
    message = await client.send_message(conv, "after the pause")
    assert message.content == "after the pause"
    assert no_wait.elapsed >= 30
    assert any(s >= 29 for s in no_wait.sleeps)


# -- a pacer brings its own clock ------------------------------------------------------------


def test_a_pacer_on_another_clock_than_the_client_s_is_refused() -> None:
    """``pacer=Pacer()`` with the client's fake ``clock=``/``sleep=`` would pace on the
    real clock while everything else runs on the fake one: refused, naming the fix."""
    fake = FakeTime()
    with pytest.raises(ConfigurationError, match=r"pacer=.*Pacer\(clock=, sleep=\)"):
        OpenTrainClient(
            "ot_pat_x", "http://127.0.0.1:9", pacer=Pacer(), clock=fake.clock, sleep=fake.sleep
        )
    other = FakeTime()
    with pytest.raises(ConfigurationError, match="pacer="):
        OpenTrainClient(
            "ot_pat_x",
            "http://127.0.0.1:9",
            pacer=Pacer(clock=other.clock, sleep=other.sleep),
            clock=fake.clock,
            sleep=fake.sleep,
        )


async def test_a_pacer_on_the_client_s_clock_paces_in_fake_time(server: FakeOpenTrain) -> None:
    """A pacer built on the same fake time as the client is used as given, and a 30 s
    Retry-After passes in fake time through it."""
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    async with OpenTrainClient(
        server.token, server.base_url, pacer=pacer, clock=fake.clock, sleep=fake.sleep
    ) as client:
        assert client.pacer is pacer
        conv = server.add_conversation()
        server.throttle_next(1, retry_after=30)
        assert (await client.send_message(conv, "paced")).content == "paced"
    assert fake.elapsed >= 30


def test_a_pacer_alone_keeps_its_own_clock() -> None:
    """Without the client's clock/sleep, a given pacer is used as it was built."""
    fake = FakeTime()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    assert OpenTrainClient("ot_pat_x", "http://127.0.0.1:9", pacer=pacer).pacer is pacer


# -- wiring is not API -------------------------------------------------------------------------


def test_the_read_side_s_wiring_is_not_public() -> None:
    """``init_reads`` rewired a client's reads to another pipeline: a public-looking name
    a user could call and break the client with.  It is private; the public names of the
    client are API only."""
    public = {name for name in dir(OpenTrainClient) if not name.startswith("_")}
    assert "init_reads" not in public
    assert hasattr(OpenTrainClient, "_init_reads")


# -- awaiting a paginator, as in openai-python ---------------------------------------------


async def test_awaiting_a_paginator_returns_its_first_page(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """openai-python's habit ``page = await client.iter_messages(cid)`` gives the first
    page, the same object the one-page call returns; awaiting does not consume the walk
    (iterating afterwards starts at the first item), and a later await fetches again."""
    conv = server.add_conversation()
    for i in range(5):
        server.add_incoming_message(conv, f"m{i}")
    walk = client.iter_messages(conv, limit=2)
    page = await walk
    assert isinstance(page, MessagePage)
    assert page == await client.read_messages(conv, limit=2)
    assert len(page.messages) == 2
    assert page.next_cursor is not None
    assert len([m async for m in walk]) == 5
    requests = len(server.requests)
    assert (await walk) == page
    assert len(server.requests) == requests + 1


async def test_awaiting_the_other_paginators_gives_their_one_page_types(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``await iter_conversations()`` is a ConversationPage, ``await iter_updates()`` an
    EventPage: exactly what ``list_conversations()``/``get_updates()`` return."""
    server.add_conversation()
    conversations = await client.iter_conversations(limit=1)
    assert isinstance(conversations, ConversationPage)
    assert conversations == await client.list_conversations(limit=1)
    updates = await client.iter_updates()
    assert isinstance(updates, EventPage)
    assert updates == await client.get_updates()


# -- a proxy the operator configured is never bypassed ----------------------------------------


def test_an_https_proxy_from_the_environment_is_used_with_its_credentials() -> None:
    """``HTTPS_PROXY=https://...`` (a TLS proxy, which aiohttp speaks) is used, not
    ignored for a direct connection; its credentials become Proxy-Authorization."""
    proxy = proxy_from_env(
        "https://api.example.com", {"HTTPS_PROXY": "https://user:s3cret@proxy.corp:3129"}
    )
    assert proxy is not None
    assert str(proxy.url) == "https://proxy.corp:3129"
    assert proxy.authorization == "Basic " + base64.b64encode(b"user:s3cret").decode()
    assert "s3cret" not in repr(proxy)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HTTPS_PROXY": "socks5://user:s3cret@proxy.corp:1080"}, "https_proxy"),
        ({"https_proxy": "socks5h://proxy.corp:1080"}, "https_proxy"),
        ({"ALL_PROXY": "socks4://user:s3cret@proxy.corp:1080"}, "all_proxy"),
        ({"HTTPS_PROXY": "ftp://user:s3cret@proxy.corp:21"}, "https_proxy"),
    ],
)
def test_a_proxy_the_sdk_cannot_use_is_a_configuration_error(
    env: dict[str, str], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy of a scheme aiohttp cannot speak (SOCKS) fails at construction naming the
    variable, as httpx and requests fail, instead of silently going direct past the
    proxy the operator configured; the value (and its password) is never shown."""
    with pytest.raises(ConfigurationError, match=named.upper()) as info:
        OpenTrainClient("ot_pat_x", "https://api.example.com", env=env)
    assert named in str(info.value)
    assert "trust_env=False" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "proxy.corp" not in str(info.value)
    assert "s3cret" not in caplog.text


def test_an_unusable_proxy_is_not_consulted_when_bypassed() -> None:
    """NO_PROXY for the API host (or trust_env=False) still goes direct without error:
    the operator said so."""
    env = {"HTTPS_PROXY": "socks5://proxy.corp:1080", "NO_PROXY": "api.example.com"}
    assert proxy_from_env("https://api.example.com", env) is None
    OpenTrainClient(
        "ot_pat_x", "https://api.example.com", env={"HTTPS_PROXY": "socks5://p:1"}, trust_env=False
    )


class TlsListener:
    """A loopback listener standing in for a TLS proxy: records the first bytes each
    connection sends (a TLS ClientHello starts with 0x16) and hangs up."""

    def __init__(self) -> None:
        self.first_bytes: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.first_bytes.append(await reader.read(5))
        writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])


async def test_requests_go_to_an_https_proxy_over_tls(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With ``HTTPS_PROXY=https://...`` the request opens TLS to the proxy (the API host
    under .test never resolves: only the proxy is reachable), and the failed handshake
    is an APIConnectionError that certainly never reached the API."""
    listener = TlsListener()
    listener.server = await asyncio.start_server(listener.handle, "127.0.0.1", 0)
    try:
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{listener.port}")
        async with OpenTrainClient("ot_pat_x", "https://api.opentrain.test", max_retries=0) as c:
            with pytest.raises(APIConnectionError) as info:
                await c.send_message("conv_1", "hi")
    finally:
        listener.server.close()
        await listener.server.wait_closed()
    assert info.value.reached_server is False
    assert len(listener.first_bytes) == 1
    assert listener.first_bytes[0][:1] == b"\x16"  # a TLS handshake record
    assert "ignoring" not in caplog.text


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the loopback proxy and the API host behind it."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - every CI image has it
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=opentrain test"]
    command += ["-addext", "subjectAltName=DNS:api.opentrain.test,IP:127.0.0.1"]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - our own argv
    return cert, key


class TlsTunnelProxy:
    """An https:// proxy on loopback: TLS to the proxy, CONNECT, then it plays the API
    host inside the tunnel (TLS again) and pipes the plain requests to the fake server."""

    def __init__(self, context: ssl.SSLContext, upstream_port: int) -> None:
        self.context = context
        self.upstream_port = upstream_port
        self.heads: list[list[str]] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            self.heads.append(head.split("\r\n"))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await writer.start_tls(self.context)  # TLS in TLS: the API's own handshake
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://user:pw@127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio does TLS in TLS from 3.11")
@pytest.mark.process
async def test_a_message_is_sent_through_an_https_proxy(
    server: FakeOpenTrain, tls_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end through a TLS proxy named by HTTPS_PROXY=https://user:pw@...: the
    message arrives, the proxy saw a CONNECT to the API host with its own credentials,
    and the bearer token only inside the tunnel."""
    cert, key = tls_files
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    trusted = ssl.create_default_context(cafile=str(cert))
    # aiohttp's default verifying context, trusting the test certificate for this test.
    monkeypatch.setattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", trusted)
    proxy = TlsTunnelProxy(served, int(server.base_url.rsplit(":", 1)[1].rstrip("/")))
    proxy.server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, ssl=served)
    conv = server.add_conversation()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with OpenTrainClient(server.token, "https://api.opentrain.test") as client:
            message = await client.send_message(conv, "through the proxy")
    finally:
        proxy.server.close()
    assert message.content == "through the proxy"
    assert [m["content"] for m in server.messages(conv)] == ["through the proxy"]
    [head] = proxy.heads
    assert head[0] == "CONNECT api.opentrain.test:443 HTTP/1.1"
    assert "Proxy-Authorization: Basic " + base64.b64encode(b"user:pw").decode() in head
    assert not any(server.token in line for line in head)


async def test_the_cli_under_a_socks_proxy_says_one_line(tmp_path: Path) -> None:
    """``opentrain-async send`` under ``HTTPS_PROXY=socks5://...``: exit 3, one line
    naming the variable, no traceback, no password, and nothing sent direct."""
    env = cli_env(
        None, tmp_path, OT_API_TOKEN="ot_pat_cli", OT_API_BASE_URL="https://api.example.com"
    )
    env["HTTPS_PROXY"] = "socks5://user:s3cret@proxy.corp:1080"
    result = await run_cli("send", "conv_1", "hi", env=env)
    assert result.code == 3
    assert "s3cret" not in result.err
    assert "HTTPS_PROXY" in result.err
    assert_one_line_error(result)
