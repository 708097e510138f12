"""The README's echo bot stopped mid-page (SIGTERM, kill -9, its own ``break``) and
restarted: every incoming message is answered exactly once.

Real subprocesses and signals: what is tested is what a process that dies leaves behind
(the saved position, the replies on the server).  The test follows the bot through its
``handled <id>`` lines and the fake server's counters, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

import opentrain_async
from opentrain_async import OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .waiting import until

ECHO_BOT = Path(__file__).resolve().parent.parent / "examples" / "echo_bot.py"
WAIT = 60.0


def echo_bot_env(server: FakeOpenTrain, cursor_file: Path) -> dict[str, str]:
    """The echo bot's environment: the fake server, the cursor file, and this checkout's
    package (not another installed copy)."""
    return {
        **os.environ,
        "OT_API_TOKEN": server.token,
        "OT_API_BASE_URL": server.base_url,
        "OT_CURSOR_FILE": str(cursor_file),
        "PYTHONPATH": str(Path(opentrain_async.__file__).parent.parent),
    }


"""Seconds any one step may take before the test fails (never slept)."""


Self = TypeVar("Self", bound="Bot")


class Bot:
    """One run of the echo bot, with the message ids it printed as handled."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.handled: list[str] = []

    python: tuple[str, ...] = ()
    """Arguments to the interpreter before the bot's path (none: run it as it is)."""

    @classmethod
    async def start(cls: type[Self], server: FakeOpenTrain, cursor_file: Path, *args: str) -> Self:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *cls.python,
            str(ECHO_BOT),
            *args,
            env=echo_bot_env(server, cursor_file),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def until_handled(self, done: Callable[[list[str]], bool]) -> None:
        """Read the bot's output until ``done(handled ids so far)``."""
        assert self.process.stdout is not None
        while not done(self.handled):
            line = await asyncio.wait_for(self.process.stdout.readline(), WAIT)
            assert line, f"the bot exited early: {await self._stderr()}"
            word, _, message_id = line.decode().strip().partition(" ")
            if word == "handled":
                self.handled.append(message_id)

    async def stop(self, sig: signal.Signals) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), WAIT)

    async def finish(self) -> int:
        """The bot stops on its own (an N argument): read the rest, return its exit code."""
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            word, _, message_id = line.decode().strip().partition(" ")
            if word == "handled":
                self.handled.append(message_id)
        return await asyncio.wait_for(self.process.wait(), WAIT)

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


pytestmark = pytest.mark.process  # real bot processes, signals and kill -9


async def _twenty_incoming(server: FakeOpenTrain, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """20 incoming messages in 4 conversations, interleaved, all after the saved cursor."""
    conversations = [server.add_conversation() for _ in range(4)]
    async with OpenTrainClient(server.token, server.base_url) as client:
        head = (await client.get_updates()).next_cursor
    cursor_file = tmp_path / "cursor.json"
    cursor_file.write_text(json.dumps({"cursor": head or "@beginning"}))
    incoming = {}
    for n in range(20):
        message = server.add_incoming_message(conversations[n % 4], f"question {n}")
        incoming[message["id"]] = message["content"]
    return incoming, cursor_file


def _assert_each_answered_once(server: FakeOpenTrain, incoming: dict[str, str]) -> None:
    replies = sorted(r.json["content"] for r in server.sends if r.status == 201)
    stored = server.stats()
    assert stored["committed"] == len(incoming), replies
    assert stored["duplicates"] == 0
    assert sorted(f"echo: {text}" for text in incoming.values()) == sorted(
        m["content"]
        for cid in {r.conversation_id for r in server.sends}
        for m in server.messages(cid or "")
        if m["isFromViewer"]
    )


def _all_of(incoming: dict[str, str], *before: Bot) -> Callable[[list[str]], bool]:
    earlier = {m for bot in before for m in bot.handled}
    return lambda now: set(incoming) <= earlier | set(now)


async def test_sigterm_mid_page_then_restart_answers_each_message_once(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A rollout's SIGTERM after 7 of a 20-message page, then a restart: 20 replies, each
    once, and no message the first run had moved past is handled again (was: 27)."""
    incoming, cursor_file = await _twenty_incoming(server, tmp_path)
    first = await Bot.start(server, cursor_file)
    await first.until_handled(lambda done: len(done) >= 7)
    assert await first.stop(signal.SIGTERM) == -signal.SIGTERM
    second = await Bot.start(server, cursor_file)
    await second.until_handled(_all_of(incoming, first))
    await second.stop(signal.SIGTERM)
    # A message counts as finished once the next is asked for: of the 7 printed, at
    # most the last can still be in hand when the signal lands.
    assert not set(first.handled[:-1]) & set(second.handled)
    _assert_each_answered_once(server, incoming)


async def test_kill9_after_sending_before_checkpoint_finds_the_reply(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """kill -9 after a reply was stored but before the bot heard back (so before its
    checkpoint): the restarted bot meets that message again, finds its reply by
    read-back and does not send it again (was: 40 incoming, 50 replies)."""
    incoming, cursor_file = await _twenty_incoming(server, tmp_path)
    first = await Bot.start(server, cursor_file, "5")
    assert await first.finish() == 0
    # The next reply is stored, then its answer never comes: the worst moment to die.
    server.script("POST /messages", delay=WAIT * 2, after_commit=True)
    second = await Bot.start(server, cursor_file)
    await until(lambda: server.stats()["committed"] == 6, "6 deliveries", WAIT)
    assert await second.stop(signal.SIGKILL) == -signal.SIGKILL
    third = await Bot.start(server, cursor_file)
    await third.until_handled(_all_of(incoming, first, second))
    await third.stop(signal.SIGTERM)
    assert server.stats()["sends"] == 20  # the sixth reply was not POSTed again
    _assert_each_answered_once(server, incoming)


async def test_sigterm_while_a_reply_is_in_flight_is_not_answered_twice(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """SIGTERM (no handler: the process just ends) with a stored reply unacknowledged,
    mid-page after 9 finished messages: the restart answers the other 10, nothing twice."""
    incoming, cursor_file = await _twenty_incoming(server, tmp_path)
    first = await Bot.start(server, cursor_file, "9")
    assert await first.finish() == 0
    server.script("POST /messages", delay=WAIT * 2, after_commit=True)
    second = await Bot.start(server, cursor_file)
    await until(lambda: server.stats()["committed"] == 10, "10 deliveries", WAIT)
    await second.stop(signal.SIGTERM)
    third = await Bot.start(server, cursor_file)
    await third.until_handled(_all_of(incoming, first, second))
    await third.stop(signal.SIGTERM)
    assert len(third.handled) == 11  # the one in flight again (found, not sent), then 10
    assert server.stats()["sends"] == 20
    _assert_each_answered_once(server, incoming)


async def test_the_bots_own_break_answers_nothing_again(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """The bot stops itself after 3 (``break`` in ``async with``): the next run starts
    at the fourth message; none of the 3 is handled or answered again (was: all 3)."""
    incoming, cursor_file = await _twenty_incoming(server, tmp_path)
    first = await Bot.start(server, cursor_file, "3")
    assert await first.finish() == 0
    assert len(first.handled) == 3
    second = await Bot.start(server, cursor_file)
    await second.until_handled(_all_of(incoming, first))
    await second.stop(signal.SIGTERM)
    assert not set(first.handled) & set(second.handled)
    assert len(second.handled) == 17
    assert server.stats()["sends"] == 20
    _assert_each_answered_once(server, incoming)
