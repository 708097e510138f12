"""The opentrain-async command line, driven as a subprocess against the fake server."""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._cli._journal import content_hash, identity
from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import (
    assert_one_line_error,
    cli_env,
    journal_header,
    run_cli,
    start_cli,
    until_committed,
    write_jsonl,
)

# -- send ---------------------------------------------------------------------------


async def test_send_prints_the_message(server: FakeOpenTrain, tmp_path: Path) -> None:
    """send CONV TEXT delivers once and prints a short human view with the message id."""
    conv = server.add_conversation()
    result = await run_cli("send", conv, "Batch 7 is live", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    [stored] = server.messages(conv)
    assert stored["content"] == "Batch 7 is live"
    assert f"sent {stored['id']} to {conv}" in result.out
    assert "Batch 7 is live" in result.out


async def test_send_json_prints_the_api_object(server: FakeOpenTrain, tmp_path: Path) -> None:
    """send --json prints the API's camelCase message object."""
    conv = server.add_conversation()
    result = await run_cli("send", conv, "hi 👋", "--json", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    printed = result.json()
    [stored] = server.messages(conv)
    assert printed["id"] == stored["id"]
    assert printed["conversationId"] == conv
    assert printed["isFromViewer"] is True
    assert printed["content"] == "hi 👋"
    assert printed["createdAt"] == stored["createdAt"]


async def test_send_reads_text_from_stdin(server: FakeOpenTrain, tmp_path: Path) -> None:
    """send CONV with no TEXT (or -) reads the text from stdin, minus the final newline."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path)
    first = await run_cli("send", conv, env=env, stdin="line one\nline two\n")
    second = await run_cli("send", conv, "-", env=env, stdin="dash\n")
    assert (first.code, second.code) == (0, 0), first.err + second.err
    assert [m["content"] for m in server.messages(conv)] == ["line one\nline two", "dash"]


async def test_send_refused_by_policy_exits_1(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A 409 on send is one line on stderr and exit 1."""
    conv = server.add_conversation(send_block="read_only_conversation")
    result = await run_cli("send", conv, "hello", env=cli_env(server, tmp_path))
    assert result.code == 1
    assert_one_line_error(result)
    assert "read_only_conversation" in result.err


async def test_send_empty_text_is_a_usage_error(server: FakeOpenTrain, tmp_path: Path) -> None:
    """Empty text is rejected locally (exit 2) and nothing is sent."""
    conv = server.add_conversation()
    result = await run_cli("send", conv, env=cli_env(server, tmp_path), stdin="")
    assert result.code == 2
    assert_one_line_error(result)
    assert server.stats()["sends"] == 0


# -- bulk: formats -----------------------------------------------------------------


def _records(conv: str, n: int, prefix: str = "msg") -> list[dict[str, str]]:
    return [{"conversationId": conv, "content": f"{prefix} {i}"} for i in range(n)]


async def test_bulk_jsonl_delivers_every_line(server: FakeOpenTrain, tmp_path: Path) -> None:
    """bulk FILE.jsonl sends every line once, exits 0 and prints a JSON summary."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 25))
    result = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["sent"] == 25
    assert summary["failed"] == 0
    assert summary["exitCode"] == 0
    assert sorted(m["content"] for m in server.messages(conv)) == sorted(
        f"msg {i}" for i in range(25)
    )
    assert server.stats()["duplicates"] == 0
    assert "bulk summary" in result.err  # the table goes to stderr with --json


async def test_bulk_csv_with_quotes_and_keys(server: FakeOpenTrain, tmp_path: Path) -> None:
    """bulk reads CSV with headers, quoted commas and newlines, and an optional key column."""
    conv = server.add_conversation()
    job = tmp_path / "job.csv"
    job.write_text(
        "conversationId,content,key\n"
        f'{conv},"Hello, world",a\n'
        f'{conv},"two\nlines",b\n'
        f"{conv},plain,\n",
        encoding="utf-8",
    )
    result = await run_cli("bulk", str(job), env=cli_env(server, tmp_path))
    assert result.code == 0, result.err
    assert [m["content"] for m in server.messages(conv)] == ["Hello, world", "two\nlines", "plain"]
    assert "bulk summary" in result.out


async def test_bulk_reads_stdin(server: FakeOpenTrain, tmp_path: Path) -> None:
    """bulk - reads the job from stdin; CSV is detected from the content."""
    conv = server.add_conversation()
    env = cli_env(server, tmp_path)
    jsonl = "\n".join(json.dumps(r) for r in _records(conv, 3, "json")) + "\n"
    csv_text = "conversationId,content\n" + "".join(f"{conv},csv {i}\n" for i in range(2))
    first = await run_cli("bulk", "-", "--json", env=env, stdin=jsonl)
    second = await run_cli("bulk", "-", "--json", env=env, stdin=csv_text)
    assert (first.code, second.code) == (0, 0), first.err + second.err
    assert (first.json()["sent"], second.json()["sent"]) == (3, 2)
    assert len(server.messages(conv)) == 5


# -- bulk: bad input ---------------------------------------------------------------


def _job_with_bad_lines(path: Path, conv: str) -> Path:
    return write_jsonl(
        path,
        [
            {"conversationId": conv, "content": "good 1"},
            {"conversationId": conv, "content": ""},
            {"conversationId": conv},
            '{"conversationId": "x", "content": ',
            {"conversationId": conv, "content": "🚀" * 5001},
            [1, 2],
            {"conversationId": conv, "content": "good 2"},
        ],
    )


async def test_bulk_bad_lines_are_reported_and_counted(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Bad lines are listed with line numbers, counted as failed; the good ones go (exit 1)."""
    conv = server.add_conversation()
    job = _job_with_bad_lines(tmp_path / "job.jsonl", conv)
    result = await run_cli("bulk", str(job), "--json", env=cli_env(server, tmp_path))
    assert result.code == 1
    summary = result.json()
    assert summary["sent"] == 2
    assert summary["failedByReason"] == {"invalid": 5}
    assert [b["line"] for b in summary["badLines"]] == [2, 3, 4, 5, 6]
    assert "line 2: content must be 1-10,000" in result.err
    assert "line 3: missing field 'content'" in result.err
    assert "line 4: invalid JSON" in result.err
    assert "got 10,002" in result.err  # UTF-16 units, as the server counts
    assert "Traceback" not in result.err
    assert [m["content"] for m in server.messages(conv)] == ["good 1", "good 2"]


async def test_bulk_strict_refuses_to_start(server: FakeOpenTrain, tmp_path: Path) -> None:
    """--strict with bad lines lists them, exits 2 and sends nothing."""
    conv = server.add_conversation()
    job = _job_with_bad_lines(tmp_path / "job.jsonl", conv)
    result = await run_cli("bulk", str(job), "--strict", env=cli_env(server, tmp_path))
    assert result.code == 2
    assert "line 6: expected a JSON object" in result.err
    assert "--strict: nothing was sent" in result.err
    assert "Traceback" not in result.err
    assert server.stats()["requests"] == 0


async def test_bulk_dry_run_lists_every_bad_line(server: FakeOpenTrain, tmp_path: Path) -> None:
    """--dry-run validates the whole file, lists all bad lines, sends nothing, needs no token."""
    conv = server.add_conversation()
    records: list[dict[str, str]] = []
    for i in range(60):
        records.append({"conversationId": conv, "content": f"ok {i}" if i % 2 else ""})
    job = write_jsonl(tmp_path / "job.jsonl", records)
    result = await run_cli("bulk", str(job), "--dry-run", env=cli_env(None, tmp_path))
    assert result.code == 2
    listed = [line for line in result.out.splitlines() if line.startswith("line ")]
    assert len(listed) == 30  # all of them, not the first 20
    assert "would send 30" in result.out
    assert server.stats()["requests"] == 0


async def test_bulk_duplicate_keys_are_bad_lines(server: FakeOpenTrain, tmp_path: Path) -> None:
    """Two inputs with one key would share a journal identity: the second is a bad line."""
    conv = server.add_conversation()
    job = write_jsonl(
        tmp_path / "job.jsonl",
        [
            {"conversationId": conv, "content": "a", "key": "k"},
            {"conversationId": conv, "content": "b", "key": "k"},
        ],
    )
    result = await run_cli("bulk", str(job), "--dry-run", "--json", env=cli_env(None, tmp_path))
    assert result.json()["badLines"] == [
        {"line": 2, "reason": "duplicate key 'k' (first used on line 1)"}
    ]


async def test_bulk_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    """A missing job file: one line on stderr, exit 2."""
    env = cli_env(None, tmp_path, OT_API_TOKEN="ot_pat_x")
    result = await run_cli("bulk", str(tmp_path / "nope.jsonl"), env=env)
    assert result.code == 2
    assert_one_line_error(result)
    assert "no such file" in result.err


async def test_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    """A bad option value exits 2 with argparse's usage line and no traceback."""
    result = await run_cli("bulk", "job.jsonl", "--concurrency", "0", env=cli_env(None, tmp_path))
    assert result.code == 2
    assert "must be at least 1" in result.err
    assert "Traceback" not in result.err


# -- could not start ----------------------------------------------------------------


async def test_missing_token_exits_3(server: FakeOpenTrain, tmp_path: Path) -> None:
    """No token anywhere: one line naming where tokens come from, exit 3."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 2))
    result = await run_cli("bulk", str(job), env=cli_env(None, tmp_path))
    assert result.code == 3
    assert_one_line_error(result)
    assert "OT_API_TOKEN" in result.err
    send = await run_cli("send", conv, "hi", env=cli_env(None, tmp_path))
    assert send.code == 3
    assert_one_line_error(send)


async def test_rejected_token_exits_3(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A token the server rejects (401) stops before any send: exit 3, token not printed."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 2))
    env = cli_env(server, tmp_path, OT_API_TOKEN="ot_pat_wrong_secret_123")
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "401" in result.err
    assert "ot_pat_wrong_secret_123" not in result.err + result.out
    assert server.stats()["sends"] == 0


async def test_unreachable_server_exits_3(tmp_path: Path) -> None:
    """Nothing listening at the base URL: one line, exit 3."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = write_jsonl(tmp_path / "job.jsonl", _records("conv_1", 2))
    env = cli_env(
        None, tmp_path, OT_API_TOKEN="ot_pat_x", OT_API_BASE_URL=f"http://127.0.0.1:{port}"
    )
    result = await run_cli("bulk", str(job), env=env)
    assert result.code == 3
    assert_one_line_error(result)
    assert "cannot reach" in result.err


# -- the journal --------------------------------------------------------------------


async def test_journal_rerun_skips_delivered_inputs(server: FakeOpenTrain, tmp_path: Path) -> None:
    """Rerunning with the same --journal sends nothing already delivered; the token and
    the content never reach the journal."""
    conv = server.add_conversation()
    job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 10, "secret text"))
    journal = tmp_path / "journal.jsonl"
    env = cli_env(server, tmp_path)
    first = await run_cli("bulk", str(job), "--journal", str(journal), "--json", env=env)
    assert first.code == 0, first.err
    sends = server.stats()["sends"]
    again = await run_cli("bulk", str(job), "--journal", str(journal), "--json", env=env)
    assert again.code == 0, again.err
    assert again.json()["skipped"] == {"delivered": 10, "failed": 0}
    assert again.json()["sent"] == 0
    assert server.stats()["sends"] == sends
    text = journal.read_text()
    assert server.token not in text
    assert "secret text" not in text
    assert len(server.messages(conv)) == 10


async def test_retry_failed_resends_only_when_asked(server: FakeOpenTrain, tmp_path: Path) -> None:
    """Failed inputs are skipped on a rerun unless --retry-failed is given."""
    conv = server.add_conversation()
    blocked = server.add_conversation(send_block="read_only_conversation")
    job = write_jsonl(
        tmp_path / "job.jsonl",
        [{"conversationId": conv, "content": "ok"}, {"conversationId": blocked, "content": "x"}],
    )
    args = ("bulk", str(job), "--journal", str(tmp_path / "j.jsonl"), "--json")
    env = cli_env(server, tmp_path)
    first = await run_cli(*args, env=env)
    assert first.code == 1
    assert first.json()["failedByReason"] == {"read_only_conversation": 1}
    sends = server.stats()["sends"]
    plain = await run_cli(*args, env=env)
    assert plain.code == 1  # still not delivered
    assert plain.json()["skipped"] == {"delivered": 1, "failed": 1}
    assert server.stats()["sends"] == sends
    server.conversation(blocked).send_block = None
    retried = await run_cli(*args, "--retry-failed", env=env)
    assert retried.code == 0, retried.err
    assert retried.json()["sent"] == 1
    assert [m["content"] for m in server.messages(blocked)] == ["x"]


async def test_interrupted_send_is_reconciled_not_resent(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """An input journaled as started but never ended is read back: found means no resend."""
    conv = server.add_conversation()
    records = _records(conv, 3)
    job = write_jsonl(tmp_path / "job.jsonl", records)
    started = time.time() - 5
    async with OpenTrainClient(server.token, server.base_url) as client:
        delivered = await client.send_message(conv, "msg 1")  # the crashed run's send
    digest = content_hash(conv, "msg 1")
    ident = identity(None, digest, 1)
    journal = tmp_path / "journal.jsonl"
    journal.write_text(
        journal_header(job, server)
        + json.dumps(
            {
                "event": "started",
                "id": ident,
                "line": 2,
                "conversationId": conv,
                "sha256": digest,
                "at": started,
            }
        )
        + "\n"
        + '{"event": "ended", "id": "torn',  # the process died mid-write
        encoding="utf-8",
    )
    result = await run_cli(
        "bulk", str(job), "--journal", str(journal), "--json", env=cli_env(server, tmp_path)
    )
    assert result.code == 0, result.err
    summary = result.json()
    assert (summary["reconciled"], summary["sent"]) == (1, 2)
    assert "ignored a partial last line" in result.err
    contents = sorted(m["content"] for m in server.messages(conv))
    assert contents == ["msg 0", "msg 1", "msg 2"]
    ended = [json.loads(line) for line in journal.read_text().splitlines()[2:]]
    assert {"event": "ended", "id": ident, "ok": True, "messageId": delivered.id}.items() <= next(
        r for r in ended if r.get("id") == ident and r["event"] == "ended"
    ).items()


@pytest.mark.process
async def test_kill_9_then_rerun_delivers_exactly_once(tmp_path: Path) -> None:
    """kill -9 mid-run (twice), rerun with the same --journal: every message exactly once."""
    n = 400
    async with FakeOpenTrain(record_requests=False, latency=0.005) as server:
        convs = [server.add_conversation() for _ in range(8)]
        server.set_rate_limit(TokenBucket(rate=150, burst=5))
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [
                {"conversationId": convs[i % 8], "content": f"notice {i}", "key": f"k{i}"}
                if i % 3
                else {"conversationId": convs[i % 8], "content": f"notice {i}"}
                for i in range(n)
            ],
        )
        args = ("bulk", str(job), "--journal", str(tmp_path / "journal.jsonl"), "--json")
        env = cli_env(server, tmp_path)
        for kill_at in (80, 220):
            proc = await start_cli(*args, env=env)
            await until_committed(server, kill_at, proc)
            proc.send_signal(signal.SIGKILL)
            await proc.communicate()
            assert proc.returncode == -signal.SIGKILL
            assert server.stats()["committed"] < n
        committed_before = server.stats()["committed"]
        final = await run_cli(*args, env=env)
        assert final.code == 0, final.err
        stats = server.stats()
        assert stats["committed"] == n
        assert stats["duplicates"] == 0
        contents = sorted(m["content"] for c in convs for m in server.messages(c))
        assert contents == sorted(f"notice {i}" for i in range(n))
        # Everything the killed runs delivered is credited, not resent: journaled as
        # delivered (skipped) or, if killed before its answer was journaled, settled
        # by read-back.
        summary = final.json()
        assert summary["skipped"]["delivered"] + summary["reconciled"] == committed_before
        assert summary["sent"] == n - committed_before


async def test_progress_lines_when_not_a_terminal(tmp_path: Path) -> None:
    """Piped stderr gets periodic plain progress lines with rate, in flight, 429s and pace."""
    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=200, burst=5))
        job = write_jsonl(tmp_path / "job.jsonl", _records(conv, 150))
        result = await run_cli(
            "bulk", str(job), "--progress-interval", "0.2", env=cli_env(server, tmp_path)
        )
    assert result.code == 0, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2
    assert "150/150" in lines[-1]
    assert "429s" in lines[-1]
    assert "pace" in lines[-1]


async def test_demo_runs_the_bulk_path_against_the_embedded_server(tmp_path: Path) -> None:
    """demo sends a job to its in-process fake server and checks the server's records."""
    result = await run_cli(
        "demo", "--messages", "300", "--server-rate", "2000", "--json", env=cli_env(None, tmp_path)
    )
    assert result.code == 0, result.err
    report = result.json()
    assert report["ok"] is True
    assert report["server"]["duplicates"] == 0
    assert report["server"]["committed"] == report["bulk"]["sent"]
    assert report["bulk"]["failedByReason"]["invalid"] == 3
    assert {"read_only_conversation", "not_participant"} <= set(report["bulk"]["failedByReason"])
    assert "NOT told the limit" in result.err
