"""A user's hook (``before_send=``, a webhook's ``on_event``), given as a plain or an
async function: its result awaited only when it is awaitable.

The one home of that rule: a plain function's ``None`` awaited raised TypeError, which
failed every input of a bulk send, or answered every webhook delivery 500, so it ran
once per retry.
"""

from __future__ import annotations

import inspect

__all__ = ["awaited"]


async def awaited(result: object) -> None:
    """Await ``result`` if it is awaitable (an async hook's); else it is done already."""
    if inspect.isawaitable(result):
        await result
