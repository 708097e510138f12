"""listen() and a conversation the bot cannot read: an event for it must not stop the bot
for good.  The position only moves past a page once its messages are looked up, so a
lookup that raised would come back on every restart, and no later message (in any
conversation) would ever be handled."""

from __future__ import annotations

import pytest

from opentrain_async import MemoryCursorStore, OpenTrainClient, PermissionDeniedError
from opentrain_async.testing import FakeOpenTrain


async def test_a_conversation_the_bot_cannot_read_does_not_stop_the_bot(
    server: FakeOpenTrain, client: OpenTrainClient, caplog: pytest.LogCaptureFixture
) -> None:
    """403 not_participant (the bot was removed from it) or 404 (deleted) on the lookup:
    those messages are skipped with a warning, the others are handled, and the
    position moves on, so a restart neither stops nor hands anything back."""
    deleted = server.add_conversation()
    server.add_incoming_message(deleted, "deleted with its conversation")
    removed = server.add_conversation(readable=False)
    server.add_incoming_message(removed, "cannot be read")
    kept = server.add_conversation()
    server.add_incoming_message(kept, "handled")
    server.script("GET /messages", status=404, error="not_found")  # `deleted`, looked up first
    store = MemoryCursorStore()
    got = [m.content async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert got == ["handled"]
    assert f"conversation {deleted} cannot be read (404" in caplog.text
    assert f"conversation {removed} cannot be read (403 not_participant" in caplog.text
    again = [
        m.content async for m in client.listen(store=store, start="beginning", until_idle=True)
    ]
    assert again == []


async def test_a_token_without_read_scope_still_stops_listen(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """A 403 about the token (missing scope) is every lookup's answer: it is raised, not
    taken as one conversation's and skipped (that would drop every message)."""
    cid = server.add_conversation()
    server.add_incoming_message(cid, "kept for when the token can read")
    server.script(
        "GET /messages",
        status=403,
        error="forbidden",
        details={"reason": "missing_scope", "requiredScope": "messages:read"},
        times=None,
    )
    store = MemoryCursorStore()
    with pytest.raises(PermissionDeniedError):
        async for _ in client.listen(store=store, start="beginning", until_idle=True):
            pass
    server.clear_faults()
    got = [m.content async for m in client.listen(store=store, start="beginning", until_idle=True)]
    assert got == ["kept for when the token can read"]
