"""One function per way a Python user could bulk-send: this SDK and its peers.

Each runner sends ``items`` (``(conversation_id, content)`` pairs) with 64 requests in
flight and returns how many it believes were delivered.  Every library is imported
here, at module level, so that no runner's timing includes an import.  Peers are written the way
their documentation suggests, with no knowledge of the server's rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import aiohttp
import httpx
import tenacity
from aiohttp_retry import ExponentialRetry, RetryClient
from opentrain._client import AsyncTransport

from opentrain_async import OpenTrainClient

from ._server import API

Items = Sequence[tuple[str, str]]
Runner = Callable[[str, str, Items, int], Awaitable[int]]


async def run_opentrain_async(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """This SDK: send_all with its default pacing (the rate is never stated)."""
    async with OpenTrainClient(token, base_url, max_concurrency=concurrency) as client:
        report = await client.send_all(items)
    return report.sent


def consumer_pausing(seconds: float, at: int) -> Runner:
    """This SDK with an ``on_outcome`` that blocks once for ``seconds`` (a slow consumer,
    a blocking call) after ``at`` outcomes: the pacer must not forget what it learned."""

    async def run(base_url: str, token: str, items: Items, concurrency: int) -> int:
        seen = 0

        def on_outcome(outcome: object) -> None:
            nonlocal seen
            seen += 1
            if seen == at:
                time.sleep(seconds)  # blocks the whole event loop, as a slow callback does

        async with OpenTrainClient(token, base_url, max_concurrency=concurrency) as client:
            report = await client.send_all(items, on_outcome=on_outcome)
        return report.sent

    return run


async def run_raw_aiohttp(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """The limit: one aiohttp session, a semaphore, no retries, no parsing beyond status."""
    semaphore = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    url = base_url + API + "/messages"
    delivered = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

        async def send(conversation_id: str, content: str) -> None:
            nonlocal delivered
            async with semaphore:
                try:
                    async with session.post(
                        url, json={"conversationId": conversation_id, "content": content}
                    ) as response:
                        await response.read()
                        delivered += response.status == 201
                except aiohttp.ClientError:
                    pass

        await asyncio.gather(*(send(c, t) for c, t in items))
    return delivered


async def run_official_sdk(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """The official ``opentrain-ai`` package's async httpx transport (no retries of its own)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = httpx.AsyncClient(limits=limits, timeout=30.0)
    transport = AsyncTransport(api_token=token, base_url=base_url, http_client=http)
    semaphore = asyncio.Semaphore(concurrency)
    delivered = 0

    async def send(conversation_id: str, content: str) -> None:
        nonlocal delivered
        async with semaphore:
            try:
                await transport.request(
                    "POST",
                    "/messages",
                    json={"conversationId": conversation_id, "content": content},
                )
                delivered += 1
            except Exception:
                pass

    try:
        await asyncio.gather(*(send(c, t) for c, t in items))
    finally:
        await transport.close()
    return delivered


async def run_aiohttp_retry(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """aiohttp-retry's RetryClient with ExponentialRetry on 429 and 5xx (its usual setup)."""
    options = ExponentialRetry(attempts=10, start_timeout=0.1, statuses={429, 500, 502, 503, 504})
    semaphore = asyncio.Semaphore(concurrency)
    url = base_url + API + "/messages"
    delivered = 0
    async with RetryClient(
        retry_options=options, headers={"Authorization": f"Bearer {token}"}
    ) as client:

        async def send(conversation_id: str, content: str) -> None:
            nonlocal delivered
            async with semaphore:
                try:
                    async with client.post(
                        url, json={"conversationId": conversation_id, "content": content}
                    ) as response:
                        await response.read()
                        delivered += response.status == 201
                except aiohttp.ClientError:
                    pass

        await asyncio.gather(*(send(c, t) for c, t in items))
    return delivered


class _Throttled(Exception):
    def __init__(self, hint: float) -> None:
        self.hint = hint


async def run_tenacity_loop(base_url: str, token: str, items: Items, concurrency: int) -> int:
    """A per-task tenacity loop that waits each 429's hint (up to 50 attempts)."""
    semaphore = asyncio.Semaphore(concurrency)
    url = base_url + API + "/messages"
    delivered = 0

    def wait_hint(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return error.hint if isinstance(error, _Throttled) else 0.5

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:

        async def attempt(conversation_id: str, content: str) -> int:
            async with (
                semaphore,
                session.post(
                    url, json={"conversationId": conversation_id, "content": content}
                ) as response,
            ):
                body = await response.json(content_type=None)
                if response.status == 429:
                    raise _Throttled(float(body["details"]["retryAfterSeconds"]))
                return response.status

        async def send(conversation_id: str, content: str) -> None:
            nonlocal delivered
            try:
                status = await tenacity.AsyncRetrying(
                    retry=tenacity.retry_if_exception_type((_Throttled, aiohttp.ClientError)),
                    wait=wait_hint,
                    stop=tenacity.stop_after_attempt(50),
                    reraise=True,
                )(attempt, conversation_id, content)
                delivered += status == 201
            except Exception:
                pass

        await asyncio.gather(*(send(c, t) for c, t in items))
    return delivered


RUNNERS: dict[str, Runner] = {
    "opentrain_async": run_opentrain_async,
    "raw aiohttp": run_raw_aiohttp,
    "official SDK": run_official_sdk,
    "aiohttp-retry": run_aiohttp_retry,
    "tenacity loop": run_tenacity_loop,
}
