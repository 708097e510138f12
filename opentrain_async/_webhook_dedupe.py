"""Where a webhook receiver remembers the events it handled: one process, or all replicas.

OpenTrain retries a delivery it did not see acknowledged, and behind a load balancer the
retry may reach another replica; a delivery replayed by anyone who saw it verifies too
(within the signature's tolerance).  So the handler dedupes on the event id from the
signed body, through a ``DedupeStore``:

- ``claim`` takes an event atomically, for ``ttl`` seconds, or says who has it: being
  handled (``"pending"``) or handled (``"done"``);
- ``settle`` marks it handled, remembered for ``ttl`` seconds;
- ``release`` gives it back after the handler failed, so OpenTrain's retry gets through;
- ``renew`` (optional in a store of your own) extends a claim still held, as a lease is
  kept: an inline handler renews its claim while it runs, so that a claim outlives a
  slow handler but not a dead one.

``MemoryDedupeStore`` serves one process; ``RedisDedupeStore`` shares the state between
replicas (``SET NX PX``: one claim wins, and keys expire on their own).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ._errors import ConfigurationError
from ._redis import scripts
from ._redis.connect import blocking_client

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "DedupeState",
    "DedupeStore",
    "MemoryDedupeStore",
    "RedisDedupeStore",
    "RenewableDedupeStore",
]

DedupeState = Literal["pending", "done"]
_DONE = "done"
_PENDING = "pending:"


class DedupeStore(Protocol):
    """Which webhook events are being handled or were handled (see the module doc)."""

    async def claim(self, key: str, token: str, ttl: float) -> DedupeState | None:
        """Hold ``key`` for ``ttl`` seconds under ``token`` if nobody does: None.
        Otherwise the holder's state, and nothing changes."""

    async def settle(self, key: str, token: str, ttl: float) -> None:
        """The event was handled: remember ``key`` as done for ``ttl`` seconds."""

    async def release(self, key: str, token: str) -> None:
        """Handling failed: free ``key`` if ``token`` still holds it."""


# Not in DedupeStore: a store written before it (claim, settle, release) stays one.  The
# handler renews the claims of stores that have it and warns about those that do not.
class RenewableDedupeStore(DedupeStore, Protocol):
    """A ``DedupeStore`` whose claims an inline handler can keep while it runs."""

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        """Hold ``key`` ``ttl`` more seconds if ``token`` still holds it (claimed, not
        settled, not expired): True.  Otherwise False, and nothing changes."""


def _check_ttl(ttl: float) -> int:
    """``ttl`` seconds as whole milliseconds, at least 1."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < 10**9:
        raise ConfigurationError(f"a dedupe ttl must be seconds in (0, 1e9), got {ttl!r}")
    return max(1, round(ttl * 1000))


class MemoryDedupeStore:
    """Dedupe state in this process: the newest ``capacity`` keys, each until its ttl."""

    def __init__(self, capacity: int = 10_000, *, clock: Callable[[], float] = time.monotonic):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigurationError(f"dedupe capacity must be an integer >= 1, got {capacity!r}")
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._capacity = capacity
        self._clock = clock

    async def claim(self, key: str, token: str, ttl: float) -> DedupeState | None:
        _check_ttl(ttl)
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            return "done" if entry[0] == _DONE else "pending"
        self._put(key, _PENDING + token, now + ttl)
        return None

    async def settle(self, key: str, token: str, ttl: float) -> None:
        _check_ttl(ttl)
        self._put(key, _DONE, self._clock() + ttl)

    async def release(self, key: str, token: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == _PENDING + token:
            del self._entries[key]

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        _check_ttl(ttl)
        now = self._clock()
        entry = self._entries.get(key)
        # An expired claim is not renewed, even if nobody took it since: Redis has
        # forgotten such a key, and both stores answer alike.
        if entry is None or entry[0] != _PENDING + token or entry[1] <= now:
            return False
        self._put(key, entry[0], now + ttl)
        return True

    def _put(self, key: str, value: str, expires: float) -> None:
        self._entries[key] = (value, expires)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisDedupeStore:
    """Dedupe state in Redis, shared by every replica that uses the same ``prefix``.

    ``redis`` is a ``redis.asyncio.Redis`` (the ``redis`` extra).  A claim is one
    ``SET key pending NX PX ttl``; a handled event is kept ``ttl`` seconds, then Redis
    forgets it.  Errors reach the handler, which answers 503 (OpenTrain retries later)
    rather than handle an event it cannot tell was handled.
    """

    def __init__(self, redis: Redis, *, prefix: str = "opentrain_async:webhook:") -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {type(prefix).__name__}")
        if (why := blocking_client(redis, "RedisDedupeStore")) is not None:
            raise ConfigurationError(why)
        self._redis = redis
        self._prefix = prefix
        self._release: AsyncScript | None = None  # _redis/lua/dedupe_release.lua
        self._renew: AsyncScript | None = None  # _redis/lua/dedupe_renew.lua

    def __repr__(self) -> str:  # never the connection (it may hold a password)
        return f"RedisDedupeStore(prefix={self._prefix!r})"

    async def claim(self, key: str, token: str, ttl: float) -> DedupeState | None:
        milliseconds = _check_ttl(ttl)
        name = self._prefix + key
        for _ in range(3):  # the holder's key may expire between SET and GET
            if await self._redis.set(name, _PENDING + token, nx=True, px=milliseconds):
                return None
            value: Any = await self._redis.get(name)
            if value is not None:
                text = value.decode() if isinstance(value, bytes) else str(value)
                if text == _PENDING + token:  # our SET, re-sent by the client's retry
                    return None
                return "done" if text == _DONE else "pending"
        return "pending"

    async def settle(self, key: str, token: str, ttl: float) -> None:
        await self._redis.set(self._prefix + key, _DONE, px=_check_ttl(ttl))

    async def release(self, key: str, token: str) -> None:
        if self._release is None:
            self._release = scripts.register(self._redis, "dedupe_release")
        await self._release(keys=[self._prefix + key], args=[_PENDING + token])

    async def renew(self, key: str, token: str, ttl: float) -> bool:
        milliseconds = _check_ttl(ttl)
        if self._renew is None:
            self._renew = scripts.register(self._redis, "dedupe_renew")
        held = await self._renew(keys=[self._prefix + key], args=[_PENDING + token, milliseconds])
        return int(held) == 1
