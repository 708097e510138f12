"""A server (or a proxy dropping fields) whose messages never say ``isFromViewer``, and
that announces every message in the feed, the bot's own replies too.  ``listen()``
skipped the account's own messages by that field alone, so it yielded the bot's own
reply as an incoming message: an echo bot (``reply(m, "echo: " + m.content)``) then
answered its own answer, and that one, without end (on 748ad8c: one more each round, six
rounds here).  A message that does not say whose it is but is a reply this
client sent (the ``ReplyLog``, which listen() keeps with its position) is skipped now;
one that does not say and is not known as ours is still yielded, as before."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .loopback import serving


def _drop_viewer_field(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_viewer_field(v) for k, v in value.items() if k != "isFromViewer"}
    if isinstance(value, list):
        return [_drop_viewer_field(v) for v in value]
    return value


@pytest.fixture
async def stripping(fake_opentrain: FakeOpenTrain) -> AsyncIterator[str]:
    """A proxy in front of the fake server that removes every ``isFromViewer``."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        async with session.request(
            request.method,
            fake_opentrain.base_url + request.path_qs,
            headers={"Authorization": request.headers.get("Authorization", "")},
            data=await request.read() or None,
            json=None,
        ) as answer:
            body = await answer.read()
            date = {"Date": answer.headers["Date"]}  # the server's clock, passed on
            try:
                payload = json.loads(body)
            except ValueError:
                return web.Response(status=answer.status, body=body, headers=date)
            return web.json_response(
                _drop_viewer_field(payload), status=answer.status, headers=date
            )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    try:
        async with serving(app) as url:
            yield url
    finally:
        await session.close()


async def test_an_echo_bot_never_answers_its_own_reply(
    fake_opentrain: FakeOpenTrain, stripping: str, tmp_path: Path
) -> None:
    """Run as a cron job: each round reads the feed until idle, from its saved place."""
    cid = fake_opentrain.add_conversation()
    fake_opentrain.add_incoming_message(cid, "hi")
    answered: list[str] = []
    async with OpenTrainClient(fake_opentrain.token, stripping, env={}) as bot:
        for _ in range(6):
            store = tmp_path / "position.json"
            async for message in bot.listen(store=store, start="beginning", until_idle=True):
                assert message.is_from_viewer is None  # the proxy said nothing
                reply = await bot.reply(message, f"echo: {message.content}")
                answered.append(message.content)
                # the server announces every message, the bot's own too
                event = {"conversationId": cid, "messageId": reply.id}
                fake_opentrain.add_event("message.received", event)
    assert answered == ["hi"]  # on 748ad8c: "hi", "echo: hi", "echo: echo: hi"...


async def test_a_reply_with_the_incoming_message_s_own_text_is_sent(
    fake_opentrain: FakeOpenTrain, stripping: str
) -> None:
    """ "ok" answered with "ok" behind the same proxy: reply()'s read-back met the
    incoming message itself (our text, no ``isFromViewer``) and, on 748ad8c, refused to
    guess whose it was (``DeliveryUnknownError``, nothing sent).  The message answered
    is never its own answer: it is left out of the read-back.  Asked again, the earlier
    answer (in the ``ReplyLog``, no ``isFromViewer``) is known ours: returned, not
    refused."""
    cid = fake_opentrain.add_conversation()
    fake_opentrain.add_incoming_message(cid, "ok")
    async with OpenTrainClient(fake_opentrain.token, stripping, env={}) as bot:
        (incoming,) = (await bot.read_messages(cid)).messages
        assert incoming.is_from_viewer is None
        reply = await bot.reply(incoming, "ok")
        assert await bot.reply(incoming, "ok") == reply  # asked twice: the first
    assert [m["content"] for m in fake_opentrain.world.messages(cid)] == ["ok", "ok"]
