"""The fallback policy over custom backends that break the protocol's newer parts.

A backend written before ``attach`` existed, one whose ``attach`` raises, one that
answers garbage: the fallback still paces (or the client refuses it with an
``OpenTrainError``), and garbage is an outage with one warning, never a crash in the
pacer nor a false rejoin."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from opentrain_async import ConfigurationError, OpenTrainClient
from opentrain_async._pacing import InMemoryPacingBackend, PacingState, Reservation
from opentrain_async._pacing.fallback import PacingFallback
from opentrain_async.testing import FakeOpenTrain, FakeTime

SECRET = "hunter2-attach-secret"


class _WithoutAttach(InMemoryPacingBackend):
    """A custom backend written before ``attach`` joined the protocol."""

    def __getattribute__(self, name: str) -> object:
        if name == "attach":
            raise AttributeError(name)
        return super().__getattribute__(name)


class _AttachRaises(InMemoryPacingBackend):
    def attach(self, key: str, on_fallback: Callable[[], None]) -> None:
        raise RuntimeError(f"cannot attach to store://u:{SECRET}@host")


class _Garbage(InMemoryPacingBackend):
    """Down (raises) until ``up``; its ``load`` (and ``reserve`` while ``garbage``)
    answers what no backend should."""

    up = False
    garbage = False

    async def reserve(
        self, count: int, *, successes: int = 0, cap: float | None = None
    ) -> Reservation:
        if not self.up:
            raise ConnectionError("down")
        if self.garbage:
            return "slots"  # type: ignore[return-value]
        return await super().reserve(count, successes=successes, cap=cap)

    async def load(self) -> PacingState:
        return {"limit": 3}  # type: ignore[return-value]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_fallback_over_a_backend_without_attach_still_counts() -> None:
    """Wrapped around a backend written before ``attach``: the fallback takes the
    client's counter itself instead of failing on the missing method."""
    time = FakeTime(start=100.0)
    fallback = PacingFallback(_WithoutAttach(clock=time.clock), where="w", clock=time.clock)
    counted: list[None] = []
    fallback.attach("key", lambda: counted.append(None))
    assert fallback.on_fallback


async def test_a_backend_whose_attach_raises_is_refused_as_a_configuration_error(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """Bare or wrapped: the client refuses it with an ``OpenTrainError`` naming the
    backend and the error's type, never its text (which may hold a secret)."""
    for backend in (
        _AttachRaises(clock=no_wait.clock),
        PacingFallback(_AttachRaises(clock=no_wait.clock), where="w", clock=no_wait.clock),
    ):
        with pytest.raises(ConfigurationError) as caught:
            OpenTrainClient(server.token, server.base_url, pacing_backend=backend)
        assert "RuntimeError" in str(caught.value)
        assert SECRET not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__


async def test_garbage_from_load_is_no_rejoin_and_no_second_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The probe's ``load`` answers garbage while the backend is down: still down (one
    outage, one warning), not a rejoin followed by a second outage."""
    time = FakeTime(start=100.0)
    fallback = PacingFallback(_Garbage(clock=time.clock), where="w", clock=time.clock)
    await fallback.reserve(1)
    time.now += 2.0
    await fallback.reserve(1)  # starts the probe
    assert fallback.probe is not None
    await fallback.probe
    assert not fallback.shared
    await fallback.reserve(1)
    assert fallback.fallbacks == 1
    assert len(_warnings(caplog)) == 1
    assert isinstance(await fallback.load(), PacingState)


async def test_garbage_from_reserve_is_paced_locally_not_a_crash(
    server: FakeOpenTrain, no_wait: FakeTime
) -> None:
    """A backend that answers ``reserve`` with garbage: sends go on, paced locally, and
    the client counts the outage."""
    backend = _Garbage(clock=no_wait.clock)
    backend.up = backend.garbage = True
    conv = server.add_conversation()
    fallback = PacingFallback(backend, where="w", clock=no_wait.clock)
    async with OpenTrainClient(
        server.token,
        server.base_url,
        pacing_backend=fallback,
        clock=no_wait.clock,
        sleep=no_wait.sleep,
    ) as client:
        await client.send_message(conv, "sent")
        assert client.stats.pacing_fallbacks == 1
    assert [m["content"] for m in server.messages(conv)] == ["sent"]


class _CloseRaises(InMemoryPacingBackend):
    async def aclose(self) -> None:
        raise RuntimeError(f"store://u:{SECRET}@host gone")


async def test_a_backend_whose_aclose_raises_does_not_break_closing(
    server: FakeOpenTrain, no_wait: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    """The client still closes its session and raises nothing; one warning names the
    backend and the error's type, never its text."""
    client = OpenTrainClient(
        server.token,
        server.base_url,
        pacing_backend=_CloseRaises(clock=no_wait.clock),
        clock=no_wait.clock,
        sleep=no_wait.sleep,
    )
    await client.send_message(server.add_conversation(), "sent")
    await client.close()
    [warning] = _warnings(caplog)
    assert "_CloseRaises" in warning
    assert "RuntimeError" in warning
    assert SECRET not in caplog.text
    assert client._pipeline._session is None
