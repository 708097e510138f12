"""Adversarial pass on "exactly once" (issues 9 and 15): edits an operator makes between
runs that the journal's identities did not survive.  Every test runs the real CLI."""

from __future__ import annotations

from pathlib import Path

from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import cli_env, run_cli, write_jsonl


def _records(conv: str, n: int, *, keys: bool = False) -> list[dict[str, str]]:
    return [
        {"conversationId": conv, "content": f"notice {i}", **({"key": f"n-{i}"} if keys else {})}
        for i in range(n)
    ]


async def test_adding_then_removing_keys_sends_nothing_again(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A delivered job without keys, then keys added to every line (the operator's fix
    for "identity by line"), then removed again: nothing is sent twice; a new keyed line
    with the text of a delivered one is still a new input."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 10))
    env = cli_env(server, tmp_path)
    assert (await run_cli("bulk", str(job), env=env)).code == 0
    keyed = _records(conv, 10, keys=True)
    write_jsonl(job, keyed)
    dry = await run_cli("bulk", str(job), "--dry-run", "--json", env=env)
    assert (dry.code, dry.json()["wouldSend"], dry.json()["alreadyDelivered"]) == (0, 0, 10)
    added = await run_cli("bulk", str(job), "--json", env=env)
    assert added.code == 0, added.err
    assert (added.json()["sent"], added.json()["skipped"]["delivered"]) == (0, 10)
    write_jsonl(job, [*_records(conv, 10), {**keyed[3], "key": "again"}])
    removed = await run_cli("bulk", str(job), "--json", env=env)
    assert removed.code == 0, removed.err
    assert (removed.json()["sent"], removed.json()["skipped"]["delivered"]) == (1, 10)
    assert server.stats()["sends"] == 11
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == sorted([f"notice {i}" for i in range(10)] + ["notice 3"])
