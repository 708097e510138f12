"""Request ids of successful calls (``with_raw_response``, the DEBUG line) and the
``OPENTRAIN_LOG`` switch."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator

import pytest

from opentrain_async import Message, MessagePage, OpenTrainClient, RawResponse
from opentrain_async._logs import configure_logging_from_env
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import ROOT


async def test_with_raw_response_gives_the_request_id_of_a_send(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """``client.with_raw_response.send_message`` returns the Message (``parse()``) with the
    status, headers and the server's request id of the answer."""
    conv = server.add_conversation()
    raw = await client.with_raw_response.send_message(conv, "hi")
    assert isinstance(raw, RawResponse)
    message = raw.parse()
    assert isinstance(message, Message)
    assert message.content == "hi"
    assert raw.status_code == 201
    assert raw.request_id is not None
    assert raw.request_id == server.sends[0].request_id
    assert raw.headers["X-Request-Id"] == raw.request_id


async def test_concurrent_raw_calls_each_get_their_own_answer(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Raw calls running together, and plain calls around them, never mix their answers."""
    conv = server.add_conversation()
    raws = await asyncio.gather(
        *(client.with_raw_response.send_message(conv, f"m{i}") for i in range(5)),
        client.send_message(conv, "plain"),
        client.with_raw_response.read_messages(conv),
    )
    sends = raws[:5]
    by_content = {r.request_id: r.parse().content for r in sends}  # type: ignore[union-attr]
    recorded = {s.request_id: s.json["content"] for s in server.sends}
    assert by_content == {rid: recorded[rid] for rid in by_content}
    assert len(by_content) == 5
    page = raws[6]
    assert isinstance(page, RawResponse)
    assert isinstance(page.parse(), MessagePage)
    assert page.status_code == 200


async def test_the_debug_line_names_the_request_id(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """At DEBUG, each request logs method, path, status, time and the request id."""
    conv = server.add_conversation()
    with caplog.at_level(logging.DEBUG, logger="opentrain_async"):
        await client.send_message(conv, "hi")
    (line,) = [r.getMessage() for r in caplog.records if "POST /messages -> 201" in r.getMessage()]
    assert line.endswith(f"request_id={server.sends[0].request_id}")
    assert server.token not in caplog.text


@pytest.fixture
def sdk_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("opentrain_async")
    level, handlers = logger.level, list(logger.handlers)
    logger.handlers.clear()
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_opentrain_log_info_and_unknown_values(
    sdk_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """``info`` sets the level and adds one stderr handler; an unknown value is reported and
    changes nothing; an application's own handler is kept, not doubled."""
    assert configure_logging_from_env({}) is None
    assert configure_logging_from_env({"OPENTRAIN_LOG": "verbose"}) is None
    assert "ignoring OPENTRAIN_LOG='verbose'" in capsys.readouterr().err
    assert sdk_logger.handlers == []
    assert configure_logging_from_env({"OPENTRAIN_LOG": " INFO "}) == logging.INFO
    assert sdk_logger.level == logging.INFO
    assert len(sdk_logger.handlers) == 1
    configure_logging_from_env({"OPENTRAIN_LOG": "debug"})
    assert (sdk_logger.level, len(sdk_logger.handlers)) == (logging.DEBUG, 1)


SCRIPT = """
import asyncio
import opentrain_async
from opentrain_async.testing import FakeOpenTrain

async def main():
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        async with opentrain_async.OpenTrainClient(server.token, server.base_url) as client:
            await client.send_message(conv, "hello")
        print(server.token, server.sends[0].request_id)

asyncio.run(main())
"""


@pytest.mark.process
async def test_opentrain_log_debug_at_import_logs_requests_to_stderr() -> None:
    """``OPENTRAIN_LOG=debug`` alone (no logging code in the app) prints each request with
    its request id on stderr, and never the token or the content."""
    env = {**os.environ, "OPENTRAIN_LOG": "debug", "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    token, request_id = out.decode().split()
    text = err.decode()
    assert "POST /messages -> 201" in text
    assert f"request_id={request_id}" in text
    assert "DEBUG opentrain_async:" in text
    assert token not in text
    assert "hello" not in text


async def test_a_raw_response_never_shows_an_echoed_token() -> None:
    """A server that echoes the Authorization header in X-Request-Id: ``raw.request_id``
    and ``raw.headers`` show it masked, like errors and logs do."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    async def me(request: web.Request) -> web.Response:
        body = {"actor": {"userId": "u1"}, "token": {"scopes": []}, "account": {}}
        return web.json_response(body, headers={"X-Request-Id": request.headers["Authorization"]})

    app = web.Application()
    app.router.add_get("/api/public/v1/auth/me", me)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with OpenTrainClient("ot_pat_echoed", f"http://127.0.0.1:{server.port}") as client:
            raw = await client.with_raw_response.whoami()
    finally:
        await server.close()
    assert raw.request_id == "Bearer ***"
    assert "ot_pat_echoed" not in repr(dict(raw.headers))
    assert raw.parse().actor.user_id == "u1"
