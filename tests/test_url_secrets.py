"""A password in a URL, whatever characters it holds, never leaves the process.

Passwords are written unencoded, as people paste them: ``/ ? # @ %``, spaces, quotes,
non-ASCII.  A seeded generator builds many such passwords and feeds them down every
path a URL takes (the API base URL as argument, variable and CLI flag; the pacing URL
as argument, variable and CLI flag; the journal URL): the error, its repr, its whole
``__cause__``/``__context__`` chain, every log record and the CLI's output never hold
the password or any piece of it (each carries two markers, and neither may appear).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async._cli import main
from opentrain_async._cli._journal import JournalError
from opentrain_async._cli._journal_redis import RedisJournalStore, RedisJournalURL
from opentrain_async._pacing.redis_backend import backend_from_url, parse_pacing_url
from opentrain_async._redis import parse_redis_url, redact_url

from .redis_server import RedisServer, require_redis_binary

MARKS = ("Zq7SECRETa", "Wv3HIDDENb")
NASTY = "/?#@%:[]\\ '\"&=;+!$*(),~`^|{}<>\t" + "éß€\u2028"
SEED = 20261206


def _piece(rng: random.Random) -> str:
    return "".join(rng.choice(NASTY + "abcXYZ019") for _ in range(rng.randint(0, 6)))


def passwords(count: int, seed: int = SEED) -> list[str]:
    """``count`` passwords, each ``A MARK1 B MARK2 C`` with A, B, C random nasty text."""
    rng = random.Random(seed)
    out = [f"pa/{MARKS[0]}{MARKS[1]}", f"{MARKS[0]}@x/{MARKS[1]}#?"]  # the reported shapes
    while len(out) < count:
        out.append(_piece(rng) + MARKS[0] + _piece(rng) + MARKS[1] + _piece(rng))
    return out


def userinfo(password: str, index: int) -> str:
    """The three ways a password is written: ``:pw@``, ``user:pw@`` and ``pw@``."""
    return ("{p}", "ops:{p}", ":{p}")[index % 3].format(p=password)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                yield from _chain(nxt)
        current = None


def assert_hidden(*texts: object) -> None:
    """No text (nor any exception chain given) holds a marker."""
    for item in texts:
        shown = []
        if isinstance(item, BaseException):
            for exc in _chain(item):
                shown += [str(exc), repr(exc), repr(exc.args)]
        else:
            shown.append(str(item))
        for text in shown:
            for mark in MARKS:
                assert mark not in text, text


def test_redaction_hides_every_generated_password() -> None:
    """The one redaction, on the raw text: nothing of the password in any form it takes."""
    for index, password in enumerate(passwords(500)):
        for scheme in ("redis", "rediss", "http", "https", "unix"):
            url = f"{scheme}://{userinfo(password, index)}@host:6379/0?job=j"
            assert_hidden(redact_url(url), redact_url(url, keep_user=False, keep_query=False))
            assert redact_url(url).endswith("@host:6379/0?job=j")


def test_the_parser_returns_the_password_it_hides() -> None:
    """Parsing is as robust as the redaction: the password comes back whole (after
    percent-decoding), and the host, port, database and job are the URL's."""
    for index, password in enumerate(passwords(300)):
        if "%" in password:  # %xx is decoded: checked by the literal case below
            continue
        if index % 3 == 0 and ":" in password:  # "a:b@": user a, password b (as redis-py)
            continue
        url = f"redis://{userinfo(password, index)}@Host.example:6390/3?job=j"
        parts = parse_redis_url(url)
        assert parts.password == password
        assert (parts.host, parts.port, parts.path, parts.query) == (
            "host.example",
            6390,
            "/3",
            (("job", "j"),),
        )
        assert_hidden(repr(parts), str(parts))
    assert parse_redis_url("redis://:a%2Fb%zz@h/0").password == "a/b%zz"
    assert parse_redis_url("redis://h/0?job=a%40b").query == (("job", "a@b"),)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def test_sdk_paths_never_show_the_password(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """base_url=, $OT_API_BASE_URL, pacing_url=, $OT_PACING_URL and the journal URL:
    every error and its chain, and every log record, without the password."""
    for index, password in enumerate(passwords(200)):
        auth = userinfo(password, index)
        errors: list[BaseException] = []
        for base in (f"http://{auth}@127.0.0.1:9/", f"https://{auth}@api.example"):
            with pytest.raises(ConfigurationError) as caught:
                OpenTrainClient("ot_pat_tok", base, env={})
            errors.append(caught.value)
            with pytest.raises(ConfigurationError) as caught:
                OpenTrainClient("ot_pat_tok", env={"OT_API_BASE_URL": base})
            errors.append(caught.value)
        bad_pacing = f"redis://{auth}@127.0.0.1:99999/0"  # refused at parse
        with pytest.raises(ConfigurationError) as caught:
            OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", pacing_url=bad_pacing, env={})
        errors.append(caught.value)
        with pytest.raises(ConfigurationError) as caught:
            OpenTrainClient("ot_pat_tok", "http://127.0.0.1:9", env={"OT_PACING_URL": bad_pacing})
        errors.append(caught.value)
        for bad_journal in (
            f"redis://{auth}@127.0.0.1:99999/0?job=j",
            f"redis://{auth}@127.0.0.1/zero?job=j",
            f"redis://{auth}@127.0.0.1/0?job=j&nope=1",
            f"redis://{auth}@127.0.0.1/0",
        ):
            with pytest.raises(JournalError) as journal_caught:
                RedisJournalURL.parse(bad_journal)
            errors.append(journal_caught.value)
        good = f"redis://{auth}@127.0.0.1:1/0?job=j"
        url = RedisJournalURL.parse(good)
        assert url.password == password or "%" in password or ":" in password
        store = RedisJournalStore(url)
        pacing = f"redis://{auth}@127.0.0.1:1/0"
        parse_pacing_url(pacing)
        assert_hidden(*errors, repr(url), str(url), url.where, repr(store), store.name)
        assert_hidden(repr(backend_from_url(pacing)))
    assert_hidden(*(record.getMessage() for record in logs.records))


@pytest.mark.parametrize(
    "path", ["--base-url", "OT_API_BASE_URL", "--journal", "--pacing-url", "OT_PACING_URL"]
)
def test_cli_paths_never_show_the_password(
    path: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    logs: pytest.LogCaptureFixture,
) -> None:
    """The CLI, in process, on each path a URL comes in by: one line on stderr, an exit
    code, and nothing of the password, for many passwords."""
    job = tmp_path / "job.jsonl"
    job.write_text('{"conversation_id": "c", "text": "hi"}\n')
    monkeypatch.setenv("OT_API_TOKEN", "ot_pat_test")
    for index, password in enumerate(passwords(40, seed=SEED + 1)):
        auth = userinfo(password, index)
        monkeypatch.delenv("OT_API_BASE_URL", raising=False)
        monkeypatch.delenv("OT_PACING_URL", raising=False)
        redis_url = f"redis://{auth}@127.0.0.1:99999/0"
        argv = ["-v", "send", "c", "hi"]
        if path == "--base-url":
            argv = ["--base-url", f"http://{auth}@127.0.0.1:9/", "send", "c", "hi"]
        elif path == "OT_API_BASE_URL":
            monkeypatch.setenv("OT_API_BASE_URL", f"http://{auth}@127.0.0.1:9/")
        elif path == "--journal":
            argv = ["bulk", str(job), "--journal", redis_url + "?job=j"]
            monkeypatch.setenv("OT_API_BASE_URL", "http://127.0.0.1:9")
        elif path == "--pacing-url":
            argv = ["-v", "send", "c", "hi", "--pacing-url", redis_url]
            monkeypatch.setenv("OT_API_BASE_URL", "http://127.0.0.1:9")
        else:
            monkeypatch.setenv("OT_PACING_URL", redis_url)
            monkeypatch.setenv("OT_API_BASE_URL", "http://127.0.0.1:9")
        code = main(argv)
        out, err = capsys.readouterr()
        assert code in (2, 3), err  # a usage error, or "could not start"
        assert err.count("\n") == 1, err
        assert "Traceback" not in err
        assert "***" in err, err
        assert_hidden(out, err)
    assert_hidden(*(record.getMessage() for record in logs.records))


SERVER_PASSWORD = "pa/S3c#r?t@x%zz&y"  # no space: redis-server splits its arguments


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_redis_binary(), tmp_path / "redis", password=SERVER_PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_an_unencoded_password_reaches_redis(locked_redis: RedisServer) -> None:
    """The password parsed from the raw URL is the one Redis checks: shared pacing and
    the journal both log in with ``pa/S3c#r?t@x%zz&y`` written as is."""
    url = f"redis://:{SERVER_PASSWORD}@127.0.0.1:{locked_redis.port}/0"
    backend = backend_from_url(url)
    try:
        backend.key = "k"
        await backend.reserve(1)
        assert backend.shared
    finally:
        await backend.aclose()
    journal = RedisJournalURL.parse(url + "?job=j").connect(env={})
    try:
        assert await journal.ping()
    finally:
        await journal.aclose()


@pytest.mark.parametrize(
    "shape",
    ["redis:/{auth}@h/0?job=j", "redis//{auth}@h/0?job=j", "rediss:{auth}@h", "REDIS:/{auth}@h"],
)
def test_a_mistyped_journal_url_is_not_printed_as_a_file_path(
    shape: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--journal redis:/:pw@h`` (a slash short) was taken as a file path, and "cannot
    create journal PATH" printed the password: now it is a bad journal URL, hidden."""
    job = tmp_path / "job.jsonl"
    job.write_text('{"conversation_id": "c", "text": "hi"}\n')
    monkeypatch.setenv("OT_API_TOKEN", "ot_pat_test")
    monkeypatch.setenv("OT_API_BASE_URL", "http://127.0.0.1:9")
    for index, password in enumerate(passwords(10, seed=SEED + 2)):
        journal = shape.format(auth=userinfo(password, index))
        assert main(["bulk", str(job), "--journal", journal]) == 2
        out, err = capsys.readouterr()
        assert "journal URL" in err
        assert_hidden(out, err)
