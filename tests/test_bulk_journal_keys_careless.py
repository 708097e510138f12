"""``journal=`` keys as a careless user gives them: the same keyed input twice, and keys
that are not text (row numbers).  A retry must report what the first run reported, and
send nothing twice."""

from __future__ import annotations

from pathlib import Path

from opentrain_async import InvalidRequestError, OutgoingMessage
from opentrain_async.testing import FakeOpenTrain, FakeTime

from .conftest import make_client


async def runs_of(
    server: FakeOpenTrain, no_wait: FakeTime, journal: Path, items: list[OutgoingMessage]
) -> list[list[tuple[str, str | None]]]:
    """Two runs of ``items`` on one journal: each input's (kind, key field of its error)."""
    runs = []
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        for _ in range(2):
            outcomes = sorted(
                [o async for o in client.send_many(items, journal=journal)],
                key=lambda o: o.index,
            )
            runs.append(
                [
                    (o.kind, o.error.field if isinstance(o.error, InvalidRequestError) else None)
                    for o in outcomes
                ]
            )
    return runs


async def test_the_same_keyed_input_twice_is_a_duplicate_in_every_run(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """The same (conversation, content, key) twice: the first run sent one and refused
    the other as a duplicate key; on main its retry reported both as sent (the second
    with the first's message), as if the job had two deliveries."""
    conv = server.add_conversation()
    items = [OutgoingMessage(conv, "hello", key="k1"), OutgoingMessage(conv, "hello", key="k1")]
    runs = await runs_of(server, no_wait, tmp_path / "job.journal", items)
    assert runs[0] == [("sent", None), ("invalid", "key")]
    assert runs[1] == runs[0]
    assert server.stats()["committed"] == 1


async def test_a_key_that_is_not_text_is_one_key_with_its_text(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """Keys 5 and "5" (a row number given as an int, another as text): the journal
    records both as ``key:5``.  On main the first run sent both and its retry refused the
    delivered input #0 ("key 5 was sent by an earlier run with other content"); now they
    are one key, as a mapping's ``"key": 5`` is: the second is a duplicate in every run."""
    conv = server.add_conversation()
    items = [
        OutgoingMessage(conv, "row five", key=5),  # type: ignore[arg-type]
        OutgoingMessage(conv, "row five again", key="5"),
    ]
    runs = await runs_of(server, no_wait, tmp_path / "job.journal", items)
    assert runs[0] == [("sent", None), ("invalid", "key")]
    assert runs[1] == runs[0]
    assert [m["content"] for m in server.messages(conv)] == ["row five"]


async def test_a_key_of_zero_is_a_key(
    server: FakeOpenTrain, no_wait: FakeTime, tmp_path: Path
) -> None:
    """``key=0`` (falsy) was taken for no key: its input was known by its content, so a
    retry with the content fixed sent it again.  As text, "0" names the input."""
    conv = server.add_conversation()
    journal = tmp_path / "job.journal"
    async with make_client(server, clock=no_wait.clock, sleep=no_wait.sleep) as client:
        await client.send_all([OutgoingMessage(conv, "v1", key=0)], journal=journal)  # type: ignore[arg-type]
        report = await client.send_all(
            [OutgoingMessage(conv, "v2", key=0)],  # type: ignore[arg-type]
            journal=journal,
        )
    assert report.failures[0].error.field == "key"  # type: ignore[union-attr]
    assert [m["content"] for m in server.messages(conv)] == ["v1"]
