"""A user's hook (``before_send=``, a webhook's ``on_event``), given as a plain or an
async function: its result awaited only when it is awaitable.  ``CallerHook`` is
``send_many(before_send=)``'s, in the bulk engine's ``SendHooks`` shape.

The one home of that rule: a plain function's ``None`` awaited raised TypeError, which
failed every input of a bulk send, or answered every webhook delivery 500, so it ran
once per retry.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._bulk_outcome import SendOutcome
    from ._models import Message

__all__ = ["CallerHook", "awaited"]


async def awaited(result: object) -> None:
    """Await ``result`` if it is awaitable (an async hook's); else it is done already."""
    if inspect.isawaitable(result):
        await result


class CallerHook:
    """``send_many(before_send=)``: the caller's callable, awaited with the item only."""

    def __init__(self, before_send: Callable[[Any], Awaitable[None] | None]) -> None:
        self._call = before_send

    async def open(self) -> None:
        return None

    async def before_send(self, index: int, item: Any) -> tuple[Message, bool] | None:
        await awaited(self._call(item))  # a plain function: its None was awaited, TypeError
        return None

    async def after(self, outcome: SendOutcome) -> None:
        return None

    async def close(self) -> None:
        return None
