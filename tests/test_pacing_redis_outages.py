"""Redis misbehaving in the middle of a rate-limited ``send_all`` (a real redis-server,
the fake server over loopback): flushed, or restarted asking for another password (one
with ``/``, ``@`` and ``%`` in it).  Every input has one outcome and is stored once, an
outage is one warning without the password, and the client rejoins."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from opentrain_async import OpenTrainClient, SendOutcome
from opentrain_async._pacing.redis_backend import RedisPacingBackend
from opentrain_async.testing import FakeOpenTrain, TokenBucket

from .redis_server import RedisServer, require_redis_binary

PASSWORD = "p/w@x%y-s3cr3t"


async def _send_through(
    server: FakeOpenTrain, redis_server: RedisServer, event: object
) -> tuple[OpenTrainClient, int]:
    """300 messages at a learned limit; ``event(n)`` after each outcome; then sends
    until the client shares Redis again.  Returns the client and how many were sent."""
    server.set_rate_limit(TokenBucket(rate=400, burst=10))
    convs = [server.add_conversation() for _ in range(4)]
    items = [(convs[i % 4], f"m {i}") for i in range(300)]
    seen = 0

    def on_outcome(outcome: SendOutcome) -> None:
        nonlocal seen
        seen += 1
        event(seen)  # type: ignore[operator]

    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{redis_server.port}/0"
    async with OpenTrainClient(
        server.token,
        server.base_url,
        max_concurrency=16,
        pacing_url=url + "?retry_every=0.05&budget=1",
    ) as client:
        report = await client.send_all(items, on_outcome=on_outcome)
        assert (report.total, report.sent) == (300, 300)
        backend = client.pacer.backend
        assert isinstance(backend, RedisPacingBackend)
        deadline, extra = time.monotonic() + 10, 0
        while not backend.shared:
            assert time.monotonic() < deadline, "did not rejoin"
            await client.send_message(convs[0], f"rejoin {extra}")
            extra += 1
    stats = server.stats()
    assert stats["committed"] == stats["distinct"] == 300 + extra
    assert stats["duplicates"] == 0
    return client, extra


def _logged(caplog: pytest.LogCaptureFixture) -> tuple[list[str], str]:
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return warnings, " ".join(f"{r.getMessage()} {r.exc_info}" for r in caplog.records)


@pytest.mark.process
async def test_flushed_mid_run_is_no_outage(
    server: FakeOpenTrain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """FLUSHALL and SCRIPT FLUSH a fifth into the job: the scripts load again, the
    state starts anew; no warning, no fallback."""
    caplog.set_level(logging.DEBUG)
    redis_server = RedisServer(require_redis_binary(), tmp_path, password=PASSWORD)
    redis_server.start()

    def flush(seen: int) -> None:
        if seen == 60:
            with redis.Redis(port=redis_server.port, password=PASSWORD) as admin:
                admin.flushall()
                admin.script_flush()

    try:
        client, _ = await _send_through(server, redis_server, flush)
    finally:
        redis_server.kill()
    assert client.stats.pacing_fallbacks == 0
    assert _logged(caplog)[0] == []


@pytest.mark.process
async def test_restarted_with_another_password_is_one_outage_without_the_password(
    server: FakeOpenTrain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis restarted asking for another password (every call: AuthenticationError),
    then restarted with ours: one outage, one warning naming an error's type and the
    redacted URL, no form of the password in any log record; the client rejoins."""
    caplog.set_level(logging.DEBUG)
    redis_server = RedisServer(require_redis_binary(), tmp_path, password=PASSWORD)
    redis_server.start()

    def restart(seen: int) -> None:
        if seen in (60, 180):
            redis_server.kill()
            redis_server.password = "another" if seen == 60 else PASSWORD
            redis_server.start()

    try:
        client, _ = await _send_through(server, redis_server, restart)
    finally:
        redis_server.kill()
    assert client.stats.pacing_fallbacks == 1
    warnings, text = _logged(caplog)
    assert len(warnings) == 1, warnings
    [warning] = warnings
    # The pooled connection the kill cut may fail first (ConnectionError), or the new
    # one's AUTH (AuthenticationError): which one is a race, the outage is one either way.
    assert "(AuthenticationError)" in warning or "(ConnectionError)" in warning
    assert ":***@127.0.0.1" in warning
    for form in (PASSWORD, quote(PASSWORD, safe=""), "s3cr3t"):
        assert form not in text


async def test_a_wrong_password_is_named_as_such_in_the_one_warning(
    server: FakeOpenTrain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's typo in the pacing URL's password: the one warning says Redis
    refused the password (waiting will not mend that), never the password itself,
    and every send still goes out, paced locally."""
    caplog.set_level(logging.DEBUG)
    redis_server = RedisServer(require_redis_binary(), tmp_path, password=PASSWORD)
    redis_server.start()
    wrong = PASSWORD + "-typo"
    try:
        async with OpenTrainClient(
            server.token,
            server.base_url,
            pacing_url=f"redis://:{quote(wrong, safe='')}@127.0.0.1:{redis_server.port}/0",
        ) as client:
            conv = server.add_conversation()
            report = await client.send_all([(conv, f"m {i}") for i in range(5)])
    finally:
        redis_server.kill()
    assert report.sent == 5
    warnings, text = _logged(caplog)
    assert len(warnings) == 1, warnings
    assert "refused our password" in warnings[0], warnings
    for form in (wrong, quote(wrong, safe=""), "s3cr3t"):
        assert form not in text
