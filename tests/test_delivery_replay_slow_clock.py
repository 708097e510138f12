"""A replayed 201 (a proxy's cache, a server deduplicating without storing: an old
message of ours, stamped minutes before the answer's own ``Date``) reaching a client
whose clock runs behind.  ``Delivery.stale`` read the ``Date`` only when our clock found
the message old, and a clock 30 minutes behind finds a 10-minute-old message new: the
replay counted as this send's delivery, and the message was never sent.  The promise
(docs/guarantees.md) is that both times are the server's and our clock's error never
enters; now our clock only spares the date when the stamp is within ``clock_skew`` of
the send either way."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import web

from opentrain_async import DeliveryUnknownError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .loopback import serving

TOKEN = "ot_pat_replay_slow_clock"


def _replaying_app(posts: list[bytes]) -> web.Application:
    """Every POST /messages answers 201 with the message it stored 10 minutes ago (the
    answer's ``Date`` is aiohttp's: now); nothing new is stored."""

    async def post(request: web.Request) -> web.Response:
        posts.append(await request.read())
        old = datetime.now(timezone.utc) - timedelta(minutes=10)
        message = {
            "id": "msg_ten_minutes_ago",
            "conversationId": "conv_1",
            "senderUserId": "u_1",
            "content": "hi",
            "createdAt": old.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "isFromViewer": True,
        }
        return web.json_response({"ok": True, "message": message}, status=201)

    app = web.Application()
    app.router.add_post("/api/public/v1/messages", post)
    return app


@pytest.mark.parametrize("behind", [0, 30 * 60, 6 * 3600])
async def test_a_replayed_201_is_no_delivery_whatever_our_clock_says(behind: int) -> None:
    posts: list[bytes] = []
    async with (
        serving(_replaying_app(posts)) as url,
        OpenTrainClient(TOKEN, url, env={}, wall_clock=lambda: time.time() - behind) as client,
    ):
        with pytest.raises(DeliveryUnknownError) as caught:  # behind: delivered before
            await client.send_message("conv_1", "hi")
        assert "replayed answer" in str(caught.value.__cause__)
    assert len(posts) == 1


async def test_a_client_whose_clock_runs_hours_behind_still_takes_genuine_201s() -> None:
    """The other side: every genuine 201 looks hours ahead to us; its Date says new."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        async with OpenTrainClient(
            server.token, server.base_url, env={}, wall_clock=lambda: time.time() - 6 * 3600
        ) as client:
            for i in range(3):
                await client.send_message(conv, f"m{i}")
        assert server.stats()["committed"] == 3
        assert server.stats()["requests"] == 3  # no read-back, no resend
