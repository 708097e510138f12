"""The fallback policy over a shared pacing backend that is not Redis.

``PacingFallback`` wraps any ``PacingBackend``: when it raises or takes longer than its
budget, pacing goes on locally, one warning says so (without the error's text, which may
hold a secret), the client counts it, a probe finds the backend again, and calls go back
to it.  Redis's own tests (``test_pacing_redis*.py``) check the same over Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from opentrain_async import OpenTrainClient
from opentrain_async._pacing import (
    InMemoryPacingBackend,
    PacingBackend,
    PacingFeedback,
    PacingState,
    PacingTuning,
    Reservation,
)
from opentrain_async._pacing.fallback import PacingFallback
from opentrain_async._pacing.redis_options import pacing_key
from opentrain_async.testing import FakeOpenTrain, FakeTime

SECRET = "hunter2-store-password"


class FlakyStore:
    """A shared backend of its own kind (no Redis): one in-memory state behind a switch.
    While ``failure`` is set every call raises it; while ``stalled`` is set every call
    waits until it is cleared."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._state = InMemoryPacingBackend(clock=clock)
        self.tuning: PacingTuning = self._state.tuning
        self.failure: BaseException | None = None
        self.stalled = False
        self._unstalled = asyncio.Event()
        self.calls = 0
        self.closed = False
        self.key: str | None = None

    def stall(self, stalled: bool) -> None:
        self.stalled = stalled
        if stalled:
            self._unstalled.clear()
        else:
            self._unstalled.set()

    async def _reach(self) -> None:
        self.calls += 1
        if self.stalled:
            await self._unstalled.wait()
        if self.failure is not None:
            raise self.failure

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        await self._reach()
        return await self._state.reserve(count, successes=successes, cap=cap)

    async def report(self, feedback: PacingFeedback, *, cap: float | None = None) -> PacingState:
        await self._reach()
        return await self._state.report(feedback, cap=cap)

    async def load(self) -> PacingState:
        await self._reach()
        return await self._state.load()

    async def aclose(self) -> None:
        self.closed = True

    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        self.key = key


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def probe_done(fallback: PacingFallback) -> None:
    assert fallback.probe is not None
    await fallback.probe


async def test_a_failing_backend_is_paced_locally_warned_once_then_rejoined(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The store fails: calls are answered locally (paced at this process's share of
    the rate learned), one warning names the store and the error's type but never its
    text; calls during the outage neither warn again nor reach the store; once it
    answers, a probe (after ``retry_every``) rejoins and calls go to the store again.
    A second outage is a second warning."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    time = FakeTime(start=100.0)
    store = FlakyStore(time.clock)
    fallback = PacingFallback(store, where="the test store", retry_every=1.0, clock=time.clock)
    counted: list[None] = []
    fallback.attach("key-1", lambda: counted.append(None))
    assert store.key == "key-1"

    await fallback.report(PacingFeedback(throttled=True, throttled_at=100.0, retry_after=0.1))
    time.now += 1.0
    assert (await fallback.reserve(4)).rate is not None  # a limit is known
    assert fallback.shared

    store.failure = ConnectionError(f"store://user:{SECRET}@host refused")
    local = await fallback.reserve(4)
    assert not fallback.shared
    assert local.rate is not None  # this process's share, not an unpaced burst
    assert (fallback.fallbacks, len(counted)) == (1, 1)
    [warning] = warnings_of(caplog)
    assert "the test store" in warning
    assert "ConnectionError" in warning
    assert SECRET not in caplog.text

    calls = store.calls
    for _ in range(5):
        await fallback.reserve(1)
        await fallback.report(PacingFeedback(successes=1))
    assert store.calls == calls  # no probe before retry_every
    assert len(warnings_of(caplog)) == 1

    store.failure = None
    time.now += 1.5
    await fallback.reserve(1)  # still local; starts the probe
    await probe_done(fallback)
    assert fallback.shared
    assert "rejoined" in caplog.text
    calls = store.calls
    await fallback.reserve(1)
    assert store.calls == calls + 1

    store.failure = OSError("down again")
    await fallback.load()
    assert (fallback.fallbacks, len(counted)) == (2, 2)
    assert len(warnings_of(caplog)) == 2


async def test_a_backend_slower_than_its_budget_is_paced_locally_until_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A store that stops answering counts as down once a call outlasts ``budget``: the
    call is answered locally (unpaced: nothing was learned yet), one TimeoutError
    warning; the probe outlasts the budget too until the store answers again."""
    caplog.set_level(logging.INFO, logger="opentrain_async")
    time = FakeTime(start=100.0)
    store = FlakyStore(time.clock)
    fallback = PacingFallback(
        store, where="the test store", budget=0.01, retry_every=1.0, clock=time.clock
    )
    await fallback.reserve(1)
    store.stall(True)
    local = await asyncio.wait_for(fallback.reserve(1), 10)  # fails, not hangs, if no budget
    assert local.rate is None  # nothing learned: slow start locally
    assert not fallback.shared
    [warning] = warnings_of(caplog)
    assert "TimeoutError" in warning

    time.now += 1.5
    await fallback.reserve(1)
    await probe_done(fallback)  # outlasts its budget: still down
    assert not fallback.shared
    store.stall(False)
    time.now += 1.5
    await fallback.reserve(1)
    await probe_done(fallback)
    assert fallback.shared
    assert len(warnings_of(caplog)) == 1


async def test_fail_closed_waits_for_the_backend_instead() -> None:
    """fail_closed: a call waits ``retry_every`` and tries again until the store answers;
    no local answer in between, one fallback counted."""
    time = FakeTime(start=100.0)
    store = FlakyStore(time.clock)
    store.failure = ConnectionError("down")

    async def sleep(seconds: float) -> None:
        await time.sleep(seconds)
        if len(time.sleeps) == 3:
            store.failure = None

    fallback = PacingFallback(
        store, where="the test store", fail_closed=True, retry_every=0.5, sleep=sleep
    )
    await fallback.reserve(1)
    assert time.sleeps == [0.5, 0.5, 0.5]
    assert store.calls == 4
    assert fallback.fallbacks == 1
    assert fallback.shared


async def test_closing_stops_the_probe_and_closes_the_backend() -> None:
    """aclose cancels a probe under way and closes the wrapped backend; calls after it
    pace locally and reach nothing."""
    time = FakeTime(start=100.0)
    store = FlakyStore(time.clock)
    fallback = PacingFallback(store, where="the test store", retry_every=1.0, clock=time.clock)
    store.failure = ConnectionError("down")
    await fallback.reserve(1)
    store.stall(True)
    time.now += 1.5
    await fallback.reserve(1)  # the probe starts and hangs
    probe = fallback.probe
    assert probe is not None
    assert not probe.done()
    await fallback.aclose()
    assert probe.cancelled()
    assert store.closed
    calls = store.calls
    await fallback.reserve(1)
    assert store.calls == calls


async def test_the_client_names_and_counts_any_backend(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Given a backend that is not Redis, the client gives it the key of its API root and
    token and counts its fallbacks in ``stats.pacing_fallbacks``; sends go on."""
    store = FlakyStore(no_wait.clock)
    backend: PacingBackend = PacingFallback(store, where="the test store", clock=no_wait.clock)
    conv = server.add_conversation()
    async with OpenTrainClient(
        server.token,
        server.base_url,
        pacing_backend=backend,
        clock=no_wait.clock,
        sleep=no_wait.sleep,
    ) as client:
        assert store.key == pacing_key(client.api_root, server.token)
        await client.send_message(conv, "shared")
        store.failure = ConnectionError("down")
        server.throttle_next(1, retry_after=0.5)  # the 429 is reported to the backend, which fails
        await client.send_message(conv, "local")
        assert client.stats.pacing_fallbacks == 1
    assert store.closed
    assert [m["content"] for m in server.messages(conv)] == ["shared", "local"]


class _BackendWithoutAttach(InMemoryPacingBackend):
    """A custom backend written before ``attach`` joined the protocol."""

    def __getattribute__(self, name: str) -> object:
        if name == "attach":
            raise AttributeError(name)
        return super().__getattribute__(name)


async def test_a_backend_written_before_attach_still_paces(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A backend without ``attach`` (the protocol's newest method) is used as it is: the
    client does not fail on it, and its 429s still teach the shared state."""
    backend = _BackendWithoutAttach(clock=no_wait.clock)
    assert not hasattr(backend, "attach")
    conv = server.add_conversation()
    server.throttle_next(1, retry_after=0.5)
    async with OpenTrainClient(
        server.token,
        server.base_url,
        pacing_backend=backend,
        clock=no_wait.clock,
        sleep=no_wait.sleep,
    ) as client:
        await client.send_message(conv, "paced")
    assert [m["content"] for m in server.messages(conv)] == ["paced"]
    assert (await backend.load()).throttles == 1  # the 429 reached the backend
