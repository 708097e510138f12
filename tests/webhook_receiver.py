"""A webhook receiver process for the tests: ``python -m tests.webhook_receiver``.

Serves ``WebhookHandler`` (inline: answered after ``on_event``) on a free loopback port,
deduping through the Redis at ``$RECEIVER_REDIS_URL``; prints ``listening <port>`` once
serving and ``handled <event id>`` for each event it handles.  Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp import web
from redis.asyncio import Redis

from opentrain_async import Event, RedisDedupeStore, WebhookHandler


async def main() -> None:
    redis = Redis.from_url(os.environ["RECEIVER_REDIS_URL"])

    async def on_event(event: Event) -> None:
        print(f"handled {event.id}", flush=True)

    handler = WebhookHandler(
        os.environ["RECEIVER_SECRET"],
        on_event,
        background=False,
        dedupe=RedisDedupeStore(redis, prefix="test:hooks:"),
    )
    app = web.Application()
    handler.install(app, "/hooks")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"listening {port}", flush=True)
    await stop.wait()
    await runner.cleanup()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main())
