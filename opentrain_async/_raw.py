"""Request ids and headers of successful calls: ``client.with_raw_response.<method>(...)``.

As openai-python's ``with_raw_response``: the same call, returning a ``RawResponse``
whose ``parse()`` is the usual result, with the status, headers and request id of the
answer it came from.  Each such call runs on a cheap copy of the client whose pipeline
holds a fresh ``RawSink`` (an explicit field, no context variable): the pipeline
appends each successful answer to it, and ordinary calls have none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, ParamSpec, TypeVar

import attrs

__all__ = ["RawResponse", "RawSink", "raw_call"]

T = TypeVar("T")
P = ParamSpec("P")

RawSink = list[tuple[int, Mapping[str, str]]]
"""Where a pipeline records (status, headers) of each successful answer."""


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


def raw_call(
    method: Callable[P, Awaitable[T]],
    recording: Callable[[RawSink], Callable[P, Awaitable[T]]],
) -> Callable[P, Awaitable[RawResponse[T]]]:
    """Wrap a client method so it returns a ``RawResponse`` around its result:
    ``recording(sink)`` is the same method on a client copy that records into ``sink``."""

    async def call(*args: P.args, **kwargs: P.kwargs) -> RawResponse[T]:
        box: RawSink = []
        result = await recording(box)(*args, **kwargs)
        if not box:  # pragma: no cover - every wrapped method makes a request to succeed
            raise RuntimeError(f"{method.__name__} returned without an HTTP answer")
        status, headers = box[-1]
        return RawResponse(result, status, headers)

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call
