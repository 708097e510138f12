"""The journal on Redis through the real CLI: kill -9 and resume elsewhere, two runs of
one job, a paused runner, Redis dying mid-run, and ``journal show|export``.

Every run is a real ``python -m opentrain_async`` subprocess; exactly-once is checked on
the fake OpenTrain server's own records (``committed``, ``duplicates``)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .cli_helpers import (
    Result,
    assert_one_line_error,
    cli_env,
    run_cli,
    start_cli,
    write_jsonl,
)
from .redis_server import RedisServer, require_redis_binary
from .waiting import until


def _job(path: Path, convs: list[str], n: int) -> Path:
    """N inputs over the conversations: a third without a key (identity by content)."""
    return write_jsonl(
        path,
        [
            {"conversationId": convs[i % len(convs)], "content": f"notice {i}", "key": f"k{i}"}
            if i % 3
            else {"conversationId": convs[i % len(convs)], "content": f"notice {i}"}
            for i in range(n)
        ],
    )


def _machine(tmp_path: Path, name: str, server: FakeOpenTrain) -> tuple[Path, dict[str, str]]:
    """A working directory and environment of its own: one 'machine' (no shared state)."""
    home = tmp_path / name
    home.mkdir()
    env = cli_env(server, home, XDG_STATE_HOME=str(home / "state"), HOME=str(home))
    return home, env


async def _start(cwd: Path, env: Mapping[str, str], *args: str) -> asyncio.subprocess.Process:
    return await start_cli(*args, env=env, cwd=cwd)


async def _finish(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> Result:
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def _run(cwd: Path, env: Mapping[str, str], *args: str) -> Result:
    return await run_cli(*args, env=env, cwd=cwd)


def _no_traceback(result: Result) -> None:
    assert "Traceback" not in result.err, result.err


@pytest.mark.process
async def test_kill_9_then_resume_on_another_machine(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """kill -9 on one machine (its own directory and state), resume from another with the
    same Redis journal: it takes over at once and every message is delivered once."""
    n = 300
    async with FakeOpenTrain(record_requests=False, latency=0.005) as server:
        convs = [server.add_conversation() for _ in range(6)]
        server.set_rate_limit(TokenBucket(rate=150, burst=5))
        job = _job(tmp_path / "job.jsonl", convs, n)
        url = f"{redis_server.url}?job=invoices-nov"
        args = ("bulk", str(job), "--journal", url, "--json")
        a_dir, a_env = _machine(tmp_path, "machine-a", server)
        b_dir, b_env = _machine(tmp_path, "machine-b", server)

        first = await _start(a_dir, a_env, *args)
        await until(lambda: server.stats()["committed"] >= 100, "100 deliveries")
        assert first.returncode is None, "the CLI ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        await first.communicate()
        assert first.returncode == -signal.SIGKILL
        committed_before = server.stats()["committed"]
        assert committed_before < n

        resumed = await _run(b_dir, b_env, *args)
        assert resumed.code == 0, resumed.err
        _no_traceback(resumed)
        assert "took over the lease of a run that is gone" in resumed.err
        stats = server.stats()
        assert stats["committed"] == n
        assert stats["duplicates"] == 0
        contents = sorted(m["content"] for c in convs for m in server.messages(c))
        assert contents == sorted(f"notice {i}" for i in range(n))
        summary = resumed.json()
        assert summary["skipped"]["delivered"] + summary["reconciled"] == committed_before
        assert summary["sent"] == n - committed_before
        # Neither machine kept anything local: the state lives in Redis only.
        assert not list((a_dir / "state").rglob("*.journal"))
        assert not list((b_dir / "state").rglob("*.journal"))


@pytest.mark.process
async def test_second_run_of_a_job_is_refused_while_the_first_runs(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Two runs of one job: the second exits 2 naming the first's host, pid and start,
    sends nothing; --dry-run and journal show still read the job; all delivered once."""
    n = 120
    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=100, burst=2))
        job = _job(tmp_path / "job.jsonl", [conv], n)
        url = f"{redis_server.url}?job=nightly&lease=60"
        a_dir, a_env = _machine(tmp_path, "node-1", server)
        b_dir, b_env = _machine(tmp_path, "node-2", server)
        first = await _start(a_dir, a_env, "bulk", str(job), "--journal", url, "--json")
        await until(lambda: server.stats()["committed"] >= 5, "the first run to send")
        # Held still (alive, lease valid) while the other commands run, so it cannot
        # finish first on a slow machine.
        first.send_signal(signal.SIGSTOP)

        second = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--json")
        assert second.code == 2, second.err
        assert_one_line_error(second)
        assert f"pid {first.pid}" in second.err
        assert "host " in second.err
        assert "since 20" in second.err
        assert second.out == ""

        dry = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--dry-run", "--json")
        assert dry.code == 0, dry.err
        assert dry.json()["alreadyDelivered"] + dry.json()["wouldReconcile"] >= 1

        shown = await _run(b_dir, b_env, "journal", "show", url, "--json")
        assert shown.code == 0, shown.err
        running = shown.json()["running"]
        assert running["pid"] == first.pid
        assert running["lease"] == 1
        assert first.returncode is None  # all of the above happened while it ran
        first.send_signal(signal.SIGCONT)

        done = await _finish(first)
        assert done.code == 0, done.err
        assert done.json()["sent"] == n
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (n, 0)


@pytest.mark.process
async def test_a_paused_runner_sends_nothing_after_it_wakes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """SIGSTOP a runner past its lease; another run takes the job over and finishes it;
    SIGCONT: the paused runner sends nothing more, stops, and says how to resume."""
    n = 150
    async with FakeOpenTrain(record_requests=False) as server:
        convs = [server.add_conversation() for _ in range(3)]
        server.set_rate_limit(TokenBucket(rate=100, burst=5))
        job = _job(tmp_path / "job.jsonl", convs, n)
        url = f"{redis_server.url}?job=paused&lease=2"
        a_dir, a_env = _machine(tmp_path, "node-1", server)
        b_dir, b_env = _machine(tmp_path, "node-2", server)
        paused = await _start(a_dir, a_env, "bulk", str(job), "--journal", url)
        await until(lambda: server.stats()["committed"] >= 30, "30 deliveries")
        paused.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            deadline = stopped_at + 30
            while True:  # refused (exit 2) while the stopped runner's lease lasts
                takeover = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--json")
                if takeover.code != 2:
                    break
                assert "is being run by another process" in takeover.err
                assert time.monotonic() < deadline, "the paused runner's lease never expired"
            assert takeover.code == 0, takeover.err
            # A stopped holder keeps the job until its lease runs out: 2 s after its last
            # renewal, and it renews every third of that.  (Whether a takeover attempt
            # was refused first depends on how fast a CLI starts on a loaded machine.)
            assert time.monotonic() - stopped_at >= 2 * 2 / 3
            assert server.stats()["committed"] == n
        finally:
            paused.send_signal(signal.SIGCONT)
        woke = await _finish(paused)
        assert woke.code == 1, woke.err
        _no_traceback(woke)
        assert "stopped sending" in woke.err
        assert "Rerun the same command" in woke.err
        stats = server.stats()
        # Nothing sent after waking, except in the one window fencing cannot close (see
        # docs/cli.md): SIGSTOP landing in the few bytecodes between the last check and
        # the socket write lets that one request out, and no other (no task runs there).
        # test_a_runner_stopped_mid_send_* below put the stop on each side of that check.
        assert stats["committed"] - n == stats["duplicates"] <= 1, stats
        again = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--json")
        assert again.code == 0, again.err
        assert again.json()["skipped"]["delivered"] == n  # the journal says all delivered


def _process_state(pid: int) -> str:
    """The kernel's one-letter state of a process (``T``: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0]


async def _stopped_mid_send(
    server: FakeOpenTrain, redis_server: RedisServer, tmp_path: Path, where: str, n: int
) -> tuple[Result, float]:
    """A runner that stops itself (SIGSTOP) on its 20th POST at ``where`` (see
    tests/frozen_sender.py); another run takes the job over once the lease expires and
    finishes it; then SIGCONT.  Returns the woken runner's result and when it was
    continued (on the server's clock, as ``received_at``)."""
    convs = [server.add_conversation() for _ in range(3)]
    job = _job(tmp_path / "job.jsonl", convs, n)
    url = f"{redis_server.url}?job=frozen&lease=2"
    a_dir, a_env = _machine(tmp_path, "node-1", server)
    b_dir, b_env = _machine(tmp_path, "node-2", server)
    frozen = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.frozen_sender", where, "20",
        "bulk", str(job), "--journal", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=a_env, cwd=a_dir,
    )  # fmt: skip
    try:
        await until(lambda: _process_state(frozen.pid) == "T", "the runner to stop itself")
        assert server.stats()["committed"] < n
        deadline = time.monotonic() + 30
        while True:  # refused (exit 2) while the stopped runner's lease (2 s) lasts
            takeover = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--json")
            if takeover.code != 2:
                break
            assert time.monotonic() < deadline, "the stopped runner's lease never expired"
        assert takeover.code == 0, takeover.err
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (n, 0)
    finally:
        continued = time.monotonic()  # the server's clock (FakeOpenTrain's default)
        frozen.send_signal(signal.SIGCONT)
    woke = await _finish(frozen)
    _no_traceback(woke)
    assert woke.code == 1, woke.err
    assert "stopped sending" in woke.err
    return woke, continued


@pytest.mark.process
async def test_a_runner_stopped_mid_send_sends_nothing_after_it_wakes(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Stopped after its request passed the check at the start of the request, before a
    byte of it was written (where the check used to be the last one): on waking, the
    check as the request is handed to the socket refuses it.  The server receives no
    request from it after SIGCONT, and every input is committed once."""
    n = 60
    async with FakeOpenTrain(record_requests=True) as server:
        woke, continued = await _stopped_mid_send(
            server, redis_server, tmp_path, "request-start", n
        )
        late = [r.json for r in server.requests if r.received_at >= continued]
        assert late == []  # not a POST, not a read: the woken runner sent nothing
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (n, 0)
        assert "no further send was started" in woke.err


@pytest.mark.process
async def test_a_runner_stopped_mid_send_after_the_last_check_sends_at_most_that_one(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The window docs/cli.md names: stopped between the last check and the socket
    write, the runner writes that one request on waking (the API has no fencing token
    to refuse it), and nothing else; the run that took over had read it back, not
    found it, and sent it: one duplicate, the documented bound."""
    n = 60
    async with FakeOpenTrain(record_requests=True) as server:
        _, continued = await _stopped_mid_send(server, redis_server, tmp_path, "body-write", n)
        late = [r for r in server.requests if r.received_at >= continued]
        assert [(r.method, r.path) for r in late] == [("POST", "/api/public/v1/messages")]
        [extra] = late
        copies = [r for r in server.sends if r.status == 201 and r.json == extra.json]
        assert len(copies) == 2  # the takeover's, then the woken runner's
        assert (server.stats()["committed"], server.stats()["duplicates"]) == (n + 1, 1)


@pytest.mark.process
async def test_redis_killed_mid_run_stops_sending_and_resumes(tmp_path: Path) -> None:
    """Redis (with an fsync'd AOF) killed mid-run: the CLI stops sending within the sends
    already journaled, exits 1 saying how to resume; once Redis is back, the rerun
    delivers the rest, each message once."""
    n = 300
    concurrency = 8
    redis = RedisServer(
        require_redis_binary(),
        tmp_path / "redis",
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    )
    redis.start()
    try:
        async with FakeOpenTrain(record_requests=False, latency=0.005) as server:
            convs = [server.add_conversation() for _ in range(4)]
            server.set_rate_limit(TokenBucket(rate=150, burst=5))
            job = _job(tmp_path / "job.jsonl", convs, n)
            url = f"{redis.url}?job=aof&lease=3"
            args = ("bulk", str(job), "--journal", url, "--concurrency", str(concurrency))
            home, env = _machine(tmp_path, "node", server)
            proc = await _start(home, env, *args)
            await until(lambda: server.stats()["committed"] >= 60, "60 deliveries")
            redis.kill()
            at_kill = server.stats()["committed"]
            lost = await _finish(proc, timeout=30)
            assert lost.code == 1, lost.err
            _no_traceback(lost)
            assert "stopped sending" in lost.err
            assert "Rerun the same command to resume once Redis is reachable" in lost.err
            # Only sends journaled as started before Redis died could still go out.
            assert server.stats()["committed"] <= at_kill + concurrency
            assert server.stats()["committed"] < n

            redis.start()
            resumed = await _run(home, env, *args, "--json")
            assert resumed.code == 0, resumed.err
            stats = server.stats()
            assert stats["committed"] == n
            assert stats["duplicates"] == 0
    finally:
        redis.stop()


async def test_redis_unreachable_at_start_exits_3_before_any_send(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """Nothing listening where the journal should be: exit 3, one line, no send, and the
    password in the URL appears nowhere."""
    conv = server.add_conversation()
    job = _job(tmp_path / "job.jsonl", [conv], 5)
    nowhere = RedisServer(require_redis_binary(), tmp_path / "r")  # a free port, not started
    url = f"redis://ops:s3cret-pass@127.0.0.1:{nowhere.port}/0?job=j"
    home, env = _machine(tmp_path, "node", server)
    result = await _run(home, env, "bulk", str(job), "--journal", url)
    assert result.code == 3
    assert_one_line_error(result)
    assert "cannot use the journal at redis://ops:***@127.0.0.1" in result.err
    assert "s3cret" not in result.err + result.out
    assert server.stats()["sends"] == 0


async def test_password_from_rediscli_auth(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A password-protected Redis: the password can come from $REDISCLI_AUTH instead of
    the command line; a wrong one is exit 3 before any send, and is never printed."""
    conv = server.add_conversation()
    job = _job(tmp_path / "job.jsonl", [conv], 6)
    redis = RedisServer(require_redis_binary(), tmp_path / "redis", password="Right-S3cret")
    redis.start()
    try:
        url = f"redis://127.0.0.1:{redis.port}/0?job=authed"
        home, env = _machine(tmp_path, "node", server)
        wrong = await _run(home, {**env, "REDISCLI_AUTH": "Wrong-S3cret"}, "bulk", str(job),
                           "--journal", url)  # fmt: skip
        assert wrong.code == 3
        assert_one_line_error(wrong)
        assert "S3cret" not in wrong.err + wrong.out
        assert server.stats()["sends"] == 0
        right = await _run(home, {**env, "REDISCLI_AUTH": "Right-S3cret"}, "bulk", str(job),
                           "--journal", url, "--json")  # fmt: skip
        assert right.code == 0, right.err
        assert right.json()["sent"] == 6
        assert "S3cret" not in right.err + right.out
    finally:
        redis.stop()


async def test_bad_journal_url_is_a_usage_error(server: FakeOpenTrain, tmp_path: Path) -> None:
    """A Redis URL without ?job= exits 2 naming the parameter, before anything else."""
    job = _job(tmp_path / "job.jsonl", [server.add_conversation()], 2)
    home, env = _machine(tmp_path, "node", server)
    result = await _run(home, env, "bulk", str(job), "--journal", "redis://127.0.0.1:1/0")
    assert result.code == 2
    assert_one_line_error(result)
    assert "job must be" in result.err
    assert server.stats()["sends"] == 0


@pytest.mark.process
async def test_journal_show_and_export(redis_server: RedisServer, tmp_path: Path) -> None:
    """show summarises a finished job (delivered, failed by reason, nobody running, when
    it expires); export prints its records as a file journal, which show reads the same."""
    async with FakeOpenTrain(record_requests=False) as server:
        ok = server.add_conversation()
        blocked = server.add_conversation(send_block="read_only_conversation")
        job = write_jsonl(
            tmp_path / "job.jsonl",
            [{"conversationId": ok, "content": f"hello {i}"} for i in range(5)]
            + [{"conversationId": blocked, "content": "refused", "key": "r1"}],
        )
        url = f"{redis_server.url}?job=report&retention=3d"
        home, env = _machine(tmp_path, "node", server)
        run = await _run(home, env, "bulk", str(job), "--journal", url)
        assert run.code == 1, run.err

        shown = await _run(home, env, "journal", "show", url, "--json")
        assert shown.code == 0, shown.err
        summary = shown.json()
        assert summary["input"] == str(job.resolve())
        assert (summary["inputs"], summary["delivered"], summary["open"]) == (6, 5, 0)
        assert summary["failedByReason"] == {"read_only_conversation": 1}
        assert summary["running"] is None
        assert 3 * 86400 - 60 < summary["recordsExpireInSeconds"] <= 3 * 86400
        [the_run] = summary["runs"]
        assert the_run["lease"] == 1
        assert "host" in the_run

        human = await _run(home, env, "journal", "show", url)
        assert human.code == 0, human.err
        assert "delivered 5, failed 1 (read_only_conversation 1), open 0" in human.out
        assert "running   no" in human.out
        assert "expires   in 2d 23h" in human.out

        exported = await _run(home, env, "journal", "export", url)
        assert exported.code == 0, exported.err
        lines = exported.out.splitlines()
        assert json.loads(lines[0])["journal"] == "opentrain-async"
        as_file = tmp_path / "exported.journal"
        as_file.write_text(exported.out, encoding="utf-8")
        from_file = await _run(home, env, "journal", "show", str(as_file), "--json")
        assert from_file.code == 0, from_file.err
        for field in ("inputs", "delivered", "failed", "failedByReason", "open", "runs"):
            assert from_file.json()[field] == summary[field]
        assert "running" not in from_file.json()

        piped = await asyncio.create_subprocess_shell(
            f"{sys.executable} -m opentrain_async journal export '{url}' | head -1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=home,
        )
        head, errors = await asyncio.wait_for(piped.communicate(), 60)
        assert json.loads(head)["journal"] == "opentrain-async"
        assert errors == b""  # a reader that stops early is not an error

        missing = await _run(home, env, "journal", "show", f"{redis_server.url}?job=never-ran")
        assert missing.code == 2
        assert_one_line_error(missing)
        assert "never run, or its records expired" in missing.err


async def test_journal_show_of_a_file_journal_and_of_something_else(
    server: FakeOpenTrain, tmp_path: Path
) -> None:
    """show reads a file journal (even while locked by a run) and refuses a file that is
    not a journal of ours, changing nothing."""
    conv = server.add_conversation()
    job = _job(tmp_path / "job.jsonl", [conv], 4)
    home, env = _machine(tmp_path, "node", server)
    journal = tmp_path / "job.journal"
    assert (await _run(home, env, "bulk", str(job), "--journal", str(journal))).code == 0
    shown = await _run(home, env, "journal", "show", str(journal))
    assert shown.code == 0, shown.err
    assert "delivered 4, failed 0, open 0" in shown.out
    notes = tmp_path / "notes.txt"
    notes.write_text("remember the milk")
    refused = await _run(home, env, "journal", "show", str(notes))
    assert refused.code == 2
    assert_one_line_error(refused)
    assert "not a journal written by opentrain-async" in refused.err
    assert notes.read_text() == "remember the milk"
    absent = await _run(home, env, "journal", "export", str(tmp_path / "nope.journal"))
    assert absent.code == 2
    assert_one_line_error(absent)
    assert "no journal at" in absent.err
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([*lines[:2], "{not json", *lines[2:]]) + "\n")
    corrupt = await _run(home, env, "journal", "show", str(journal))
    assert corrupt.code == 2
    assert_one_line_error(corrupt)
    assert "corrupt at line 3" in corrupt.err


@pytest.mark.process
async def test_sigterm_releases_the_job_for_the_next_pod(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """SIGTERM (a pod being evicted): the run stops gracefully (143) and releases its
    lease, so the next run starts at once, elsewhere, and finishes exactly once."""
    n = 200
    async with FakeOpenTrain(record_requests=False) as server:
        conv = server.add_conversation()
        server.set_rate_limit(TokenBucket(rate=100, burst=5))
        job = _job(tmp_path / "job.jsonl", [conv], n)
        url = f"{redis_server.url}?job=evicted&lease=60"
        a_dir, a_env = _machine(tmp_path, "node-1", server)
        b_dir, b_env = _machine(tmp_path, "node-2", server)
        first = await _start(a_dir, a_env, "bulk", str(job), "--journal", url)
        await until(lambda: server.stats()["committed"] >= 20, "20 deliveries")
        first.send_signal(signal.SIGTERM)
        stopped = await _finish(first)
        assert stopped.code == 143, stopped.err
        _no_traceback(stopped)
        shown = await _run(b_dir, b_env, "journal", "show", url, "--json")
        assert shown.json()["running"] is None  # released, not left to expire (60 s)
        assert shown.json()["open"] == 0  # sends on the wire were journaled
        resumed = await _run(b_dir, b_env, "bulk", str(job), "--journal", url, "--json")
        assert resumed.code == 0, resumed.err
        assert "took over" not in resumed.err
    stats = server.stats()
    assert (stats["committed"], stats["duplicates"]) == (n, 0)
