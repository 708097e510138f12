"""Adversary round adv3: a Redis password full of URL syntax (``/``, ``@``, ``%``,
unencoded, as the README allows) through shared pacing and a Redis journal while a
quota 429 halts the job, sends wait at the pacer and Redis then goes away: no log
record, outcome error (with its chain), ``describe()`` or ``repr`` shows it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opentrain_async import JobJournalError, OpenTrainClient
from opentrain_async.testing import FakeOpenTrain

from .redis_server import RedisServer, require_redis_binary
from .test_bulk_halt_resume import _QuotaAfter

PASSWORD = "S3/cr@t%zz!x"
PIECES = (PASSWORD, "S3/cr", "cr@t", "%zz!x")


def _chain(error: BaseException | None) -> str:
    shown = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        shown += [str(error), repr(error), repr(getattr(error, "args", ()))]
        error = error.__cause__ or error.__context__
    return "\n".join(shown)


@pytest.mark.slow  # real Redis, a real pause cut short by leaving the loop
async def test_a_halt_with_redis_gone_shows_no_password(
    server: FakeOpenTrain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer(require_redis_binary(), tmp_path / "redis", password=PASSWORD)
    redis.start()
    try:
        url = redis.url  # the password unencoded
        convs = [server.add_conversation() for _ in range(6)]
        items = [(c, f"{c} part {p}") for p in range(5) for c in convs]
        server.set_rate_limit(_QuotaAfter(admitted=9))  # type: ignore[arg-type]
        texts: list[str] = []
        caplog.set_level(logging.DEBUG)
        async with OpenTrainClient(server.token, server.base_url, pacing_url=url) as client:
            texts.append(repr(client))
            try:
                async with client.send_many(
                    items, journal=f"{url}?job=adv3-secrets", grace=0.5
                ) as outcomes:
                    async for outcome in outcomes:
                        texts += [repr(outcome), _chain(outcome.error)]
                        if outcome.kind == "rate_limited":  # halted: the rest wait
                            redis.stop()
                            texts.append(client.pacer.describe())
                            break
            except JobJournalError as exc:  # a send still on the wire when Redis went:
                texts.append(_chain(exc))  # its record cannot be written (its text too)
            texts += [repr(o) + _chain(o.error) for o in outcomes.unreported]
            texts.append(client.pacer.describe())
        texts += [r.getMessage() + repr(r.args) + repr(r.__dict__) for r in caplog.records]
        texts += [_chain(r.exc_info[1]) for r in caplog.records if r.exc_info]
        joined = "\n".join(texts)
        assert [p for p in PIECES if p in joined] == []
    finally:
        redis.stop()
