"""Read-back moves its bound back by how far our clock runs ahead of the server's
``Date`` (5480a4e).  A ``Date`` that is not the server's clock (a proxy or load balancer
whose own clock is hours behind, while the API stamps messages right) moved it back
hours too: a message of ours with the same text sent two hours earlier (by an earlier
process, so not claimed) was taken for this send, which never reached the server, and
the send was reported delivered: a message lost.  A page holding a message stamped
after that ``Date`` (beyond ``clock_skew``) shows the ``Date`` is not the clock that
stamps messages: read-back then keeps our own bound."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, Fault


async def test_a_date_hours_behind_the_messages_does_not_move_the_bound() -> None:
    offset = [timedelta(hours=-2)]

    def now() -> datetime:
        return datetime.now(timezone.utc) + offset[0]

    async with FakeOpenTrain(now=now) as server:
        conv = server.add_conversation()
        async with OpenTrainClient(
            server.token, server.base_url, env={}, wall_clock=lambda: time.time() - 7200
        ) as earlier:  # an earlier process, two hours ago
            await earlier.send_message(conv, "reminder: standup")
        offset[0] = timedelta(0)
        server._now = lambda: datetime.now(timezone.utc) - timedelta(hours=6)  # the proxy
        server.inject_fault(Fault.RESET_BEFORE_COMMIT, count=1)
        async with OpenTrainClient(
            server.token, server.base_url, env={}, reconcile=True, wall_clock=time.time
        ) as client:
            client.reconcile_delay = 0
            await client.send_message(conv, "reminder: standup")
        assert len(server.messages(conv)) == 2  # sent: the two-hour-old one is not it
