"""Read-back after a send whose answer was lost (a reset after the server committed),
from a client whose clock runs more than ``clock_skew`` (60 s) fast.  Read-back looks
for a message "created after the first attempt began, less ``clock_skew``" with the
attempt's start taken from our clock, and stops once the listed messages are older
than that: our own message, stamped by the server 90 s "before" the attempt, is not
recognised, the send is judged undelivered and sent again.  Two copies on the server,
where the README promises that an unknown outcome is never settled by a guess (adv12;
fixed: read-back's bound moves back by how far our clock runs ahead of the server's
``Date``, as the replayed-201 rule reads it)."""

from __future__ import annotations

import time

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain, Fault


@pytest.mark.parametrize("ahead", [0, 30, -300, 90, 3600])
async def test_read_back_finds_its_own_message_whatever_our_clock_says(ahead: int) -> None:
    """A clock within ``clock_skew`` fast or any amount behind held before; minutes or
    an hour fast, read-back moves its bound back by how far our clock runs ahead of the
    server's ``Date`` (read from each page's answer): found, not sent again."""
    async with FakeOpenTrain() as server:
        conv = server.add_conversation()
        server.inject_fault(Fault.RESET_AFTER_COMMIT, count=1)
        async with OpenTrainClient(
            server.token, server.base_url, env={}, reconcile=True,
            wall_clock=lambda: time.time() + ahead,
        ) as client:  # fmt: skip
            client.reconcile_delay = 0
            message = await client.send_message(conv, "hello")
        assert [m["id"] for m in server.messages(conv)] == [message.id]
        assert server.stats()["duplicates"] == 0
