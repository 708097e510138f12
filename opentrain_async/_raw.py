"""Request ids and headers of successful calls: ``client.with_raw_response.<method>(...)``.

As openai-python's ``with_raw_response``: the same call, returning a ``RawResponse``
whose ``parse()`` is the usual result, with the status, headers and request id of the
answer it came from.  The pipeline hands each successful answer to a per-task
``ContextVar`` box only while such a call is running, so ordinary calls pay one
``ContextVar.get()`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Generic, ParamSpec, TypeVar

import attrs

__all__ = ["RAW_RESPONSES", "RawResponse", "raw_call"]

T = TypeVar("T")
P = ParamSpec("P")

RAW_RESPONSES: ContextVar[list[tuple[int, Mapping[str, str]]] | None] = ContextVar(
    "opentrain_raw_responses", default=None
)
"""Where the request pipeline records (status, headers) of each successful answer."""


@attrs.frozen
class RawResponse(Generic[T]):
    """A call's result with the HTTP answer it came from (the last successful one, e.g.
    the read-back that settled an unknown send)."""

    parsed: T
    status_code: int
    headers: Mapping[str, str] = attrs.field(repr=False)

    @property
    def request_id(self) -> str | None:
        """The server's ``X-Request-Id`` for this answer (quote it to OpenTrain support)."""
        return self.headers.get("X-Request-Id")

    def parse(self) -> T:
        """The result the plain call returns."""
        return self.parsed


def raw_call(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[RawResponse[T]]]:
    """Wrap a client method so it returns a ``RawResponse`` around its result."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        box: list[tuple[int, Mapping[str, str]]] = []
        token = RAW_RESPONSES.set(box)
        try:
            result = await method(*args, **kwargs)
        finally:
            RAW_RESPONSES.reset(token)
        if not box:  # pragma: no cover - every wrapped method makes a request to succeed
            raise RuntimeError(f"{method.__name__} returned without an HTTP answer")
        status, headers = box[-1]
        return RawResponse(result, status, headers)

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call
