"""``asyncio.run`` ending (the main coroutine returned or raised, a job runner shutting
down) cancels every task at once: the task running ``send_all(journal=)`` and its
workers, one of them waiting in the journal's hook.  The worker's cancel was taken for
the hook's own ``CancelledError`` (the engine was not stopped yet), so that input got an
``error`` outcome ("before_send raised CancelledError"), told to ``on_outcome`` and
journaled, and the worker pulled the next input.  Python 3.11+ tells the two apart
(``Task.cancelling``); 3.10 cannot, and keeps the old behaviour."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async.journal import FileJournalStore
from opentrain_async.testing import FakeOpenTrain, FakeTime


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 counts no cancels")
def test_a_worker_cancelled_at_loop_shutdown_gets_no_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FileJournalStore.append
    told: list[SendOutcome] = []
    ended: list[BaseException] = []

    async def main() -> None:
        entered, never = asyncio.Event(), asyncio.Event()

        async def append(self: Any, records: Sequence[Any]) -> None:
            if any(r.get("event") == "started" for r in records):
                entered.set()
                await never.wait()  # a slow disk under the first "started" record
            await real(self, records)

        monkeypatch.setattr(FileJournalStore, "append", append)

        async def job() -> None:
            clock = FakeTime()
            async with FakeOpenTrain() as server:
                convs = [server.add_conversation() for _ in range(4)]
                async with OpenTrainClient(
                    server.token, server.base_url, clock=clock.clock, sleep=clock.sleep
                ) as client:
                    try:
                        await client.send_all(
                            [(c, "notice") for c in convs],
                            concurrency=4,
                            journal=tmp_path / "j",
                            on_outcome=told.append,
                        )
                    except BaseException as exc:
                        ended.append(exc)
                        raise

        asyncio.create_task(job())  # noqa: RUF006 (asyncio.run ends it)
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.sleep(0.01)  # every worker waits in the hook

    asyncio.run(main())
    assert told == []
    assert [type(e) for e in ended] == [asyncio.CancelledError]
    assert "before_send raised" not in (tmp_path / "j").read_text()
