"""``messages --follow`` polled only the newest page: more new messages between two
polls than a page holds (``--limit``, 50 by default) and the older of them were never
printed, with nothing said.  A tail that drops messages silently is worse than a slow
one.  Now a poll that finds no message it has shown already pages back until it does
(or reaches what it saw last).  (Failed on main: 15 of the 25 never appeared.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, start_cli


@pytest.mark.process
async def test_follow_prints_every_message_of_a_burst_larger_than_a_page(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    conv = server.add_conversation()
    server.add_incoming_message(conv, "before")
    env = cli_env(server, tmp_path)
    args = ("messages", conv, "--follow", "--interval", "0.05", "--limit", "10")
    proc = await start_cli(*args, env=env)
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert first.decode().rstrip().endswith(": before")
        for i in range(25):  # between two polls: 2.5 pages
            server.add_incoming_message(conv, f"burst {i}")
        shown: list[str] = []
        for _ in range(25):
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 2)
            except asyncio.TimeoutError:
                break  # main: the 15 oldest never came
            shown.append(line.decode().rstrip().rsplit(": ", 1)[1])
        assert shown == [f"burst {i}" for i in range(25)]
    finally:
        proc.terminate()
        await proc.wait()


async def test_follow_pages_back_no_further_than_a_cursor_handed_back(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A server that answers every page with the same cursor (and no message it
    shows yet) must not keep the tail paging forever: one page back per poll, then the
    next poll.  (Guards this branch's paging; main never paged back.)"""
    conv = server.add_conversation()
    server.add_incoming_message(conv, "before")
    server.add_incoming_message(conv, "older page")
    async with OpenTrainClient(server.token, server.base_url) as client:
        # A real cursor (to the page of "before", shown): a request caught between the
        # scripted answers and the real ones meets no 400 for a made-up cursor.
        cursor = (await client.read_messages(conv, limit=1)).next_cursor
    env = cli_env(server, tmp_path)
    args = ("messages", conv, "--follow", "--interval", "0.1", "--limit", "2", "--max", "4")
    proc = await start_cli(*args, env=env)
    assert proc.stdout is not None
    try:
        for expected in ("before", "older page"):
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.decode().rstrip().endswith(f": {expected}")
        before = server.stats()["requests"]
        server.script("GET /messages", json={"messages": [], "nextCursor": cursor}, times=None)
        await asyncio.sleep(0.5)  # about 5 polls, each one page back at most
        server.clear_faults()
        assert server.stats()["requests"] - before < 30  # paging forever: thousands
        server.add_incoming_message(conv, "one")
        server.add_incoming_message(conv, "two")  # the 4th shown: the command ends
        out, _ = await asyncio.wait_for(proc.communicate(), 5)
        assert [line.rsplit(": ", 1)[1] for line in out.decode().splitlines()] == ["one", "two"]
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
