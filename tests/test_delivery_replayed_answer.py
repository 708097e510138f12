"""A 2xx naming an old message of ours (same conversation and content, an id this client
never claimed, stamped long before the send began) is not this send's: the README's "a
new id".  A proxy replaying a cached answer, or a server deduplicating identical content
without storing it, answers so.  On a60ec89 it was taken as delivered (a strict xfail):
the only evidence is the message's age, and our clock alone cannot judge it (one running
minutes fast would take every genuine 201 for a replay and resend it).  The server's own
clock can: the answer's ``Date``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from opentrain_async import DeliveryUnknownError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .loopback import serving

TOKEN = "ot_pat_replayed"
OLD = {
    "id": "msg_from_2020",
    "conversationId": "conv_1",
    "senderUserId": "u_1",
    "content": "hi",
    "createdAt": "2020-01-01T00:00:00.000Z",
    "isFromViewer": True,
}


@contextlib.asynccontextmanager
async def replaying(
    date: str | None = "auto", age: str | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Every POST /messages answers 201 with ``OLD``; nothing is stored.  ``date``: the
    answer's Date header ("auto": aiohttp's, the real time; None: no header); ``age``:
    an Age header (an HTTP cache's)."""
    posts: list[bytes] = []

    async def post(request: web.Request) -> web.Response:
        posts.append(await request.read())
        response = web.json_response({"ok": True, "message": OLD}, status=201)
        if date is None:
            # aiohttp adds Date when preparing: an empty value reads as no date
            response.headers["Date"] = ""
        elif date != "auto":
            response.headers["Date"] = date
        if age is not None:
            response.headers["Age"] = age
        return response

    app = web.Application()
    app.router.add_post("/api/public/v1/messages", post)
    async with serving(app) as url:
        yield url, posts


async def test_a_201_naming_a_message_from_years_ago_is_not_a_delivery() -> None:
    async with replaying() as (url, posts), OpenTrainClient(TOKEN, url, env={}) as client:
        with pytest.raises(DeliveryUnknownError) as caught:  # on a60ec89: delivered
            await client.send_message("conv_1", "hi")
        assert "replayed answer" in str(caught.value.__cause__)
    assert len(posts) == 1  # read-back could not tell: unknown, never resent blindly


async def test_a_client_whose_clock_runs_an_hour_fast_still_takes_genuine_201s() -> None:
    """Our clock says every message is an hour old; the server's Date says it is new."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        async with OpenTrainClient(
            server.token, server.base_url, env={}, wall_clock=lambda: time.time() + 3600
        ) as client:
            for i in range(3):
                await client.send_message(conv, f"m{i}")
        assert server.stats()["committed"] == 3
        assert server.stats()["requests"] == 3  # no read-back, no resend


async def test_an_old_201_without_a_server_clock_is_not_second_guessed() -> None:
    """No Date (or an unreadable one): our clock alone does not decide."""
    for date in (None, "yesterday"):
        async with replaying(date) as (url, posts), OpenTrainClient(TOKEN, url, env={}) as c:
            message = await c.send_message("conv_1", "hi")
        assert message.id == "msg_from_2020"
        assert len(posts) == 1


async def test_the_fake_server_s_date_follows_its_clock() -> None:
    """With FakeTime, ``createdAt`` is virtual (from 2026-01-01), and so is the answer's
    Date: a client on the real wall clock would otherwise take every send of such a test
    for a replay (its messages months old by the real Date)."""
    t = FakeTime()
    async with FakeOpenTrain(clock=t.clock, now=t.datetime) as server:
        conv = server.add_conversation()
        async with OpenTrainClient(
            server.token, server.base_url, env={}, clock=t.clock, sleep=t.sleep
        ) as client:
            message = await client.send_message(conv, "later")
        assert message.created_at == t.datetime()
        assert server.stats()["requests"] == 1


async def test_an_http_cache_s_replay_is_dated_by_its_age() -> None:
    """A cache replays the stored answer with its original Date (2020's, as old as the
    message) and says how old it is in ``Age``: Date plus Age is the server's now."""
    age = str(int(time.time() - 1577836800))  # seconds since 2020-01-01
    date = "Wed, 01 Jan 2020 00:00:01 GMT"
    async with replaying(date, age) as (url, posts), OpenTrainClient(TOKEN, url, env={}) as c:
        with pytest.raises(DeliveryUnknownError) as caught:  # on a60ec89: delivered
            await c.send_message("conv_1", "hi")
    assert "replayed answer" in str(caught.value.__cause__)
    assert len(posts) == 1
    # Ignored: Date alone (2020), not replayed.  "²" passes str.isdigit but not int():
    # on a9018e2 a bare ValueError out of send_message, neither delivered nor unknown.
    for absurd in ("9" * 40, "-5", "soon", "\u00b2"):
        async with replaying(date, absurd) as (url, _), OpenTrainClient(TOKEN, url, env={}) as c:
            assert (await c.send_message("conv_1", "hi")).id == "msg_from_2020"
