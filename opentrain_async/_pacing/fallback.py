"""What pacing does when its shared backend fails: pace locally, say so once, count it,
try again now and then, rejoin.

Generic over the shared side: a ``PacingFallback`` runs each call a shared backend makes
(``call``); one of ``errors`` means the shared state is out of reach.  Fail-open (the
default), the call's answer is None and the backend asks ``local`` (an
``InMemoryPacingBackend`` seeded with this process's recent share of the shared rate)
until a background ``rejoin`` succeeds; ``fail_closed`` waits ``retry_every`` and tries
again instead.  Each outage logs one warning (the error's type only: its text may quote
a URL or a server's reply) and calls every ``on_fallback`` (the client counts them in
``stats.pacing_fallbacks``).  ``RedisPacingBackend`` is the shared backend that uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .backend import InMemoryPacingBackend
from .curve import MIN_RATE
from .shared_bounds import UnusableSharedState
from .state import PacingState

__all__ = ["PacingFallback"]

logger = logging.getLogger("opentrain_async")

T = TypeVar("T")


class PacingFallback:
    """The fail-open / fail-closed policy of one shared pacing backend (module doc).

    ``where`` names the shared side in messages (``"Redis at redis://h:6379/0"``,
    never a password); ``state_ttl`` is how long an unused shared state lives (said
    when it is unusable); ``learned`` tells whether the shared state had a rate when
    last heard (else the local pacer starts slow); ``rejoin`` is the probe: it returns
    when the shared side answers again, raising one of ``errors`` while it does not.
    """

    def __init__(
        self,
        local: InMemoryPacingBackend,
        *,
        where: str,
        errors: tuple[type[BaseException], ...],
        fail_closed: bool,
        retry_every: float,
        state_ttl: float,
        learned: Callable[[], bool],
        rejoin: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.local = local
        self.where = where
        self.errors = errors
        self.fail_closed = fail_closed
        self.retry_every = retry_every
        self.state_ttl = state_ttl
        self._learned = learned
        self._rejoin = rejoin
        self._clock = clock
        self._sleep = sleep
        self.on_fallback: list[Callable[[], None]] = []
        """Called each time the shared side becomes unreachable."""
        self.fallbacks = 0
        """Times this process lost the shared side and paced itself (or waited)."""
        self.down_since: float | None = None
        self.probe: asyncio.Task[None] | None = None
        """The rejoin probe under way, if any."""
        self.closed = False  # aclose() ran: local pacing, no outage, no reconnecting
        self._next_probe = 0.0
        self._granted: deque[tuple[float, int]] = deque()  # (local time, slots) this second

    @property
    def shared(self) -> bool:
        """True while the shared side answers (False: pacing locally after a failure)."""
        return self.down_since is None

    async def call(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run ``call`` on the shared side; None means: use ``local``."""
        while True:
            if self.closed:
                return None
            if self.down_since is not None and not self.fail_closed:
                self._maybe_probe()
                return None
            try:
                result = await call()
            except asyncio.CancelledError:
                raise
            except self.errors as exc:
                if self.closed:
                    return None
                self._went_down(exc)
                if not self.fail_closed:
                    return None
                await self._sleep(self.retry_every)
                continue
            self._came_back()
            return result

    def granted(self, now: float, slots: int) -> None:
        """This process took ``slots`` shared slots at ``now`` (its share, if it must
        pace alone)."""
        granted = self._granted
        granted.append((now, slots))
        while granted[0][0] < now - 1.0:
            granted.popleft()

    async def aclose(self) -> None:
        """Stop probing: calls still in flight (or made later) pace locally; our own
        close is no outage."""
        self.closed = True
        if self.probe is not None and not self.probe.done():
            self.probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.probe

    def _went_down(self, exc: BaseException) -> None:
        now = self._clock()
        self._next_probe = now + self.retry_every
        if self.down_since is not None:
            return
        self.down_since = now
        self.fallbacks += 1
        for callback in self.on_fallback:
            callback()
        what = "waiting for it" if self.fail_closed else "pacing locally until it answers"
        if isinstance(exc, UnusableSharedState):  # our own text: numbers, no secret
            what = "waiting" if self.fail_closed else "pacing locally"
            logger.warning(
                "shared pacing: the state in %s is unusable (%s); %s until it is "
                "valid again or expires (%g s after its last write)",
                self.where,
                exc,
                what,
                self.state_ttl,
            )
        else:  # the type only: an error's text may quote the URL or a server reply
            logger.warning(
                "shared pacing: %s unreachable (%s); %s",
                self.where,
                type(exc).__name__,
                what,
            )
        if not self.fail_closed:
            self._seed_local(now)

    def _seed_local(self, now: float) -> None:
        """Pace locally from this process's recent share of the shared rate."""
        if not self._learned():
            self.local.state = PacingState()  # nothing learned yet: slow start locally
            return
        slots = sum(n for t, n in self._granted if t >= now - 1.0)
        share = max(float(slots), MIN_RATE)
        self.local.state = PacingState(
            limit=share,
            searching=False,
            origin=now,
            cut_at=now,
            recover=self.local.tuning.recover,
        )

    def _came_back(self) -> None:
        if self.down_since is None:
            return
        self.down_since = None
        logger.info("shared pacing: %s answers again; rejoined", self.where)

    def _maybe_probe(self) -> None:
        """While pacing locally: now and then, ask the shared side in the background."""
        if self.probe is not None and not self.probe.done():
            return
        now = self._clock()
        if now < self._next_probe:
            return
        self._next_probe = now + self.retry_every

        async def probe() -> None:
            try:
                await self._rejoin()
            except self.errors:
                return
            self._came_back()

        self.probe = asyncio.get_running_loop().create_task(probe())
