"""Order and ``journal=`` together: a retry in order of a run that went on past a failure
(``on_failure="continue"`` or ``ordered=False``) must not report what that run delivered
as "not sent"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


@pytest.mark.parametrize("first", [{"on_failure": "continue"}, {"ordered": False}])
async def test_a_delivered_input_behind_a_failure_is_reported_delivered_on_retry(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path, first: dict[str, Any]
) -> None:
    """Part 1 is refused for good, part 2 was delivered by the first run.  The retry
    (in order, the default) reported part 2 ``blocked_by_earlier_failure``, "not sent",
    though it is in the conversation: a user acting on that sends it twice."""
    server.block_content("BADWORD")
    conversation = server.add_conversation()
    items = [(conversation, "part 1 BADWORD"), (conversation, "part 2")]
    journal = tmp_path / "job.journal"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        runs = []
        for options in (first, {}):
            outcomes = [o async for o in client.send_many(items, journal=journal, **options)]
            runs.append({o.index: o for o in outcomes})
    delivered = runs[0][1].message
    assert delivered is not None
    assert runs[1][0].kind == "message_policy_blocked"
    assert runs[1][1].ok, runs[1][1].error
    assert runs[1][1].message is not None
    assert runs[1][1].message.id == delivered.id
    assert server.stats()["committed"] == 1
