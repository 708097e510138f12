"""A Redis journal's lease is released at the end of a run, however the Redis client
treats the renewer's cancel.

On Python 3.10 and 3.11, ``asyncio.wait_for`` returns its call's result instead of
raising when a cancel lands as the call completes, and redis-py wraps every command's
write in it: the renewer's cancel was lost, it renewed forever, and ``release`` (waiting
for it) never returned: a takeover run under load hung at its very end until the test's
60 s timeout (tests/test_journal_redis_cli.py, the paused runner).  A fake ``run``
swallows the cancel here the same way, every time."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from opentrain_async._cli._journal_lease import JournalLease
from opentrain_async._cli._journal_redis_url import RedisJournalURL


async def test_release_ends_when_the_redis_client_swallows_the_renewers_cancel() -> None:
    url = attrs.evolve(RedisJournalURL.parse("redis://127.0.0.1:1/0?job=j"), lease=0.03)
    renewing = asyncio.Event()
    calls: list[str] = []

    async def run(name: str, keys: list[str], args: list[Any]) -> Any:
        calls.append(name)
        if name == "journal_acquire":
            return [1, 7]
        if name == "journal_renew":
            renewing.set()
            try:
                await asyncio.Event().wait()  # the command on its way to Redis
            except asyncio.CancelledError:
                if calls.count(name) > 1:
                    raise
                return 1  # done as the cancel landed: wait_for (< 3.12) returns the result
        return 1

    lease = JournalLease(url, run)
    await lease.acquire()
    await asyncio.wait_for(renewing.wait(), 30)
    release = asyncio.ensure_future(lease.release())
    done, _ = await asyncio.wait({release}, timeout=10)
    if not done:  # the renewer went on: cancel it again (honoured this time) to end it
        assert lease.renewer is not None
        lease.renewer.cancel()
        await release
    assert done, f"release never returned: the renewer went on ({calls})"
    assert calls == ["journal_acquire", "journal_renew", "journal_release"]
    assert lease.lost == "the run ended"
