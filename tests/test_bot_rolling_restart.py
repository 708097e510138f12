"""A rolling restart with surge, as Kubernetes does it by default: the new bot process
starts on the same cursor file while the old one still runs, then the old one is
stopped (SIGTERM, or kill -9).

Was: both bots listened at once, each was handed the messages that arrived meanwhile,
and both handled them (and, replying at the same moment, could both answer).  Now the
new bot says it waits for the other listener on that file, waits, and once the old one
is gone goes on from its saved position: every message is answered exactly once, and
the new bot answers what arrives after the old one stopped.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain

from .test_bot_answers_once import (
    WAIT,
    Bot,
    _all_of,
    _assert_each_answered_once,
    _twenty_incoming,
)

pytestmark = pytest.mark.process  # real bot processes, signals and kill -9

_LOGGED_BOT = (
    "import logging, runpy, sys; "
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr); "
    "sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)
"""The README's echo bot, with the logging an operator would configure (INFO, stderr)."""


class LoggedBot(Bot):
    """The echo bot with its log on stderr, read line by line as it comes."""

    python = ("-c", _LOGGED_BOT)

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__(process)
        self.log: list[str] = []
        self.waits = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_log())

    async def _read_log(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode().rstrip())
            if "in use by another listener" in self.log[-1]:
                self.waits.set()

    async def until_waiting_or_handled(self) -> None:
        """Until it says it waits for the other listener, or it handles a message
        (was: it listened beside the old bot)."""
        handled = asyncio.ensure_future(self.until_handled(lambda done: bool(done)))
        said = asyncio.ensure_future(self.waits.wait())
        try:
            await asyncio.wait_for(
                asyncio.wait([handled, said], return_when=asyncio.FIRST_COMPLETED), WAIT
            )
        finally:
            handled.cancel()
            said.cancel()


def _add(server: FakeOpenTrain, conversations: list[str], what: str) -> dict[str, str]:
    """Five more incoming messages across the conversations: id -> text."""
    added = [server.add_incoming_message(conversations[n % 4], f"{what} {n}") for n in range(5)]
    return {m["id"]: m["content"] for m in added}


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_a_new_bot_started_before_the_old_one_stopped_answers_once(
    server: FakeOpenTrain, tmp_path: Path, stop: signal.Signals
) -> None:
    incoming, cursor_file = await _twenty_incoming(server, tmp_path)
    old = await Bot.start(server, cursor_file)
    await old.until_handled(_all_of(incoming))
    new = await LoggedBot.start(server, cursor_file)
    conversations = sorted({r.conversation_id or "" for r in server.sends})
    meanwhile = _add(server, conversations, "meanwhile")
    await new.until_waiting_or_handled()
    assert new.handled == [], "the new bot listened beside the old one"
    assert sum("in use by another listener" in line for line in new.log) == 1, new.log
    assert server.token not in "\n".join(new.log)
    assert str(cursor_file) in new.log[-1]
    await old.until_handled(_all_of(meanwhile))  # while the new one waits
    assert await old.stop(stop) == -stop
    later = _add(server, conversations, "later")
    await new.until_handled(_all_of(later))
    await new.stop(signal.SIGTERM)
    # Of what the old bot handled, at most its last message can come back (in hand).
    assert not set(old.handled[:-1]) & set(new.handled)
    assert set(later) <= set(new.handled)
    _assert_each_answered_once(server, {**incoming, **meanwhile, **later})
