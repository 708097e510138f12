"""A doomed job is stopped, not burned: a token that cannot send costs a handful of
requests, every input still gets exactly one outcome, and the CLI refuses to start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opentrain_async import NotAttemptedError, OpenTrainClient, SendOutcome
from opentrain_async.testing import FakeOpenTrain

from .cli_helpers import assert_one_line_error, cli_env, run_cli, until_committed, write_jsonl

READ_ONLY = "ot_pat_read_only"


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        ("read_only", "insufficient_scope"),
        ("unclaimed", "account_claim_required"),
        ("feature_off", "feature_disabled"),
        ("revoked", "unauthorized"),
    ],
)
async def test_send_all_stops_after_the_first_account_level_refusal(
    server: FakeOpenTrain, setup: str, kind: str
) -> None:
    """2,000 inputs with a token that cannot send: at most `concurrency` requests, then
    every remaining input gets one not_attempted outcome naming the cause."""
    conv = server.add_conversation()
    token = server.token
    if setup == "read_only":
        token = READ_ONLY
        server.add_token(token, scopes=["messages:read"])
    elif setup == "unclaimed":
        server.account(token).claimed = False
    elif setup == "feature_off":
        server.account(token).messaging_writes = False
    else:
        token = "ot_pat_revoked"
    async with OpenTrainClient(token, server.base_url) as client:
        report = await client.send_all(
            ((conv, f"m {i}") for i in range(2000)), concurrency=8, keep_failures=2000
        )
    assert report.total == 2000
    assert report.sent == 0
    assert len(server.sends) <= 8
    assert report.counts[kind] == len(server.sends)
    assert report.counts["not_attempted"] == 2000 - len(server.sends)
    assert sorted(o.index for o in report.failures) == list(range(2000))
    skipped = [o for o in report.failures if o.kind == "not_attempted"]
    assert all(isinstance(o.error, NotAttemptedError) for o in skipped)
    error = skipped[0].error
    assert isinstance(error, NotAttemptedError)
    assert kind.split("_")[0] in str(error).lower() or kind.upper() in str(error)


async def test_send_many_stops_when_the_account_is_unclaimed_mid_run(
    server: FakeOpenTrain,
) -> None:
    """Refusals about the message (not a participant) go on; a refusal about the account
    mid-run stops the sending; the consumer still sees one outcome per input."""
    conv = server.add_conversation()
    stranger = server.add_conversation(participant=False)
    items = [(stranger if i == 3 else conv, f"m {i}") for i in range(300)]
    outcomes: list[SendOutcome] = []
    client = OpenTrainClient(server.token, server.base_url)
    async with client, client.send_many(items, concurrency=4) as stream:
        async for outcome in stream:
            outcomes.append(outcome)
            if len(outcomes) == 50:
                server.account(server.token).claimed = False
    assert sorted(o.index for o in outcomes) == list(range(300))
    kinds = {o.index: o.kind for o in outcomes}
    assert kinds[3] == "not_participant"
    delivered = [o for o in outcomes if o.ok]
    assert len(delivered) == server.stats()["committed"]
    assert len(server.sends) <= len(delivered) + 1 + 4 + 4  # + refusals in flight/queued
    assert sum(1 for k in kinds.values() if k == "not_attempted") >= 300 - len(server.sends) - 4


async def test_iterator_raising_cancelled_error_does_not_hang(
    server: FakeOpenTrain, client: OpenTrainClient
) -> None:
    """An async input iterator that itself raises CancelledError (concurrency=1) ends
    the stream with that error; send_many does not hang."""
    conv = server.add_conversation()

    async def items():  # type: ignore[no-untyped-def]
        yield conv, "first"
        raise asyncio.CancelledError

    seen: list[SendOutcome] = []

    async def consume() -> None:
        async for outcome in client.send_many(items(), concurrency=1):
            seen.append(outcome)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(consume())), 10)
    assert [o.ok for o in seen] == [True]


# -- the CLI: preflight before the first send ----------------------------------------


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("read_only", "messages:write"),
        ("unclaimed", "https://"),
        ("feature_off", "messagingWrites"),
    ],
)
async def test_cli_preflight_refuses_a_token_that_cannot_send(
    server: FakeOpenTrain, tmp_path: Path, setup: str, expected: str
) -> None:
    """Read-only token, unclaimed account, messaging off: exit 3 before any send, with
    the fix (the missing scope, the claim URL, the feature)."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl", [{"conversationId": conv, "content": f"m {i}"} for i in range(50)]
    )
    env = cli_env(server, tmp_path)
    if setup == "read_only":
        server.add_token(READ_ONLY, scopes=["messages:read"])
        env["OT_API_TOKEN"] = READ_ONLY
    elif setup == "unclaimed":
        server.account(server.token).claimed = False
    else:
        server.account(server.token).messaging_writes = False
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 3, result.err
    assert_one_line_error(result)
    assert "cannot send" in result.err
    assert expected in result.err
    assert server.stats()["sends"] == 0


async def test_cli_base_url_that_is_not_the_api_exits_3(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """A base URL with a wrong path (/foo) is exit 3 before any send, not 'not_found'
    for every input."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", [{"conversationId": conv, "content": "hi"}])
    env = cli_env(server, tmp_path, OT_API_BASE_URL=server.base_url + "/foo")
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 3, result.err
    assert_one_line_error(result)
    assert "does not answer like the OpenTrain public API" in result.err
    assert server.stats()["sends"] == 0


@pytest.mark.slow  # waits a second or more of real time
async def test_cli_stops_when_the_token_is_revoked_mid_run(tmp_path: Path) -> None:
    """The account becomes unclaimed mid-run: the run stops (no 1,000 failures), says
    why, and a rerun after the fix delivers the rest exactly once."""
    n = 400
    async with FakeOpenTrain(record_requests=False, latency=0.005) as server:
        conv = server.add_conversation()
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": conv, "content": f"m {i}"} for i in range(n)],
        )
        args = ("bulk", str(job), "--concurrency", "4", "--json")
        env = cli_env(server, tmp_path)
        run = asyncio.ensure_future(run_cli(*args, env=env))
        await until_committed(server, 40, run)
        server.account(server.token).claimed = False
        first = await run
        assert first.code == 1, first.err
        summary = first.json()
        assert "cannot send" in summary["stopped"]
        assert summary["failedByReason"].get("account_claim_required", 0) <= 4
        assert summary["sent"] + summary["notStarted"] + summary["failed"] == n
        assert server.stats()["sends"] - server.stats()["committed"] <= 8
        server.account(server.token).claimed = True
        final = await run_cli(*args, env=env)
        assert final.code == 0, final.err
        stats = server.stats()
        assert (stats["committed"], stats["duplicates"]) == (n, 0)
