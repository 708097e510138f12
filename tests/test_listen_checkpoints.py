"""listen() saves its position after every finished message, and what "finished" means."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, MemoryCursorStore, OpenTrainClient
from opentrain_async._listen import POSITION_PREFIX, ListenPosition
from opentrain_async.testing import FakeOpenTrain


class Boom(Exception):
    """The handler's own failure."""


def _three(server: FakeOpenTrain) -> list[str]:
    cid = server.add_conversation()
    return [server.add_incoming_message(cid, text)["id"] for text in ("a", "b", "c")]


async def _rest(client: OpenTrainClient, store: MemoryCursorStore) -> list[str]:
    return [m.id async for m in client.listen(store=store, start="beginning", until_idle=True)]


async def test_each_message_is_saved_when_the_next_is_asked_for(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Asking for message k+1 saves "k finished" before anything else happens."""
    a, b, _c = _three(server)
    store = MemoryCursorStore()
    messages = client.listen(store=store, start="beginning")
    assert (await anext(messages)).id == a
    assert store.saves == 0  # a is in hand, not finished
    assert (await anext(messages)).id == b
    assert store.cursor is not None
    assert ListenPosition.decode(store.cursor).handled == (a,)
    await messages.aclose()


async def test_break_inside_async_with_finishes_the_message_in_hand(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """Leaving ``async with client.listen()`` by ``break``: the message counts as handled."""
    a, b, c = _three(server)
    store = MemoryCursorStore()
    async with client.listen(store=store, start="beginning") as messages:
        async for message in messages:
            if message.id == b:
                break
    assert await _rest(client, store) == [c]
    assert a not in await _rest(client, store)


async def test_an_exception_inside_async_with_leaves_the_message_to_the_next_run(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The handler raised: that message comes back, the ones before it do not."""
    _a, b, c = _three(server)
    store = MemoryCursorStore()

    async def bot() -> None:
        async with client.listen(store=store, start="beginning") as messages:
            async for message in messages:
                if message.id == b:
                    raise Boom

    with pytest.raises(Boom):
        await bot()
    assert await _rest(client, store) == [b, c]


async def test_finish_and_aclose(server: FakeOpenTrain, client: OpenTrainClient) -> None:
    """``finish()`` saves the message in hand as handled; ``aclose()`` does not."""
    a, b, c = _three(server)
    store = MemoryCursorStore()
    messages = client.listen(store=store, start="beginning")
    assert (await anext(messages)).id == a
    await messages.aclose()
    messages = client.listen(store=store, start="beginning")
    assert (await anext(messages)).id == a
    await messages.finish()
    with pytest.raises(StopAsyncIteration):
        await anext(messages)
    assert await _rest(client, store) == [b, c]


async def test_a_finished_page_saves_the_plain_next_cursor(
    server: FakeOpenTrain, client: OpenTrainClient, tmp_path: Path
) -> None:
    """Once every message of a page is finished the file holds the bare feed cursor, as
    earlier versions wrote it (and a bare cursor from them is read as a fresh page)."""
    _three(server)
    path = tmp_path / "cursor.json"
    got = [m async for m in client.listen(store=path, start="beginning", until_idle=True)]
    assert len(got) == 3
    saved = json.loads(path.read_text())["cursor"]
    assert not saved.startswith(POSITION_PREFIX)
    assert ListenPosition.decode(saved) == ListenPosition(saved)


async def test_a_restart_mid_page_skips_what_was_finished_across_page_sizes(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """The position names finished messages, not an offset: a restart with another
    ``limit`` still skips exactly those."""
    ids = [_three(server) for _ in range(2)]
    flat = [m for group in ids for m in group]
    store = MemoryCursorStore()
    messages = client.listen(store=store, start="beginning", limit=200)
    for _ in range(4):
        await anext(messages)
    await messages.aclose()  # the 4th is in hand: not finished
    rest = [
        m.id async for m in client.listen(store=store, start="beginning", limit=2, until_idle=True)
    ]
    assert rest == flat[3:]


@pytest.mark.parametrize(
    "saved",
    [
        POSITION_PREFIX + "{",
        POSITION_PREFIX + json.dumps({"cursor": "", "handled": [], "replies": []}),
        POSITION_PREFIX + json.dumps({"cursor": "1", "handled": [1], "replies": []}),
        POSITION_PREFIX + json.dumps({"cursor": "1", "handled": []}),
        POSITION_PREFIX + json.dumps({"cursor": "1", "handled": [], "replies": ["r1"]}),
        POSITION_PREFIX + json.dumps(["1"]),
    ],
)
async def test_a_corrupt_position_is_a_configuration_error(
    client: OpenTrainClient, saved: str
) -> None:
    """A damaged position is refused, never read as "start over" (replays) or skipped."""
    with pytest.raises(ConfigurationError, match="position is corrupt"):
        await anext(client.listen(store=MemoryCursorStore(saved)))


def test_position_round_trip() -> None:
    """Every position survives its string form; the plain ones stay plain."""
    for position in (
        ListenPosition(None),
        ListenPosition("42"),
        ListenPosition("42", ("m1", "m2")),
        ListenPosition(None, (), (("r1", "m1"),)),
    ):
        assert ListenPosition.decode(position.encode()) == position
    assert ListenPosition("42").encode() == "42"
