"""``RecentSet``: the one bounded "seen before" set of the SDK.

Read-back's claimed message ids, ``listen()``'s delivered ids, the webhook handler's
delivery ids, the CLI's ``--follow`` and the page iterators' cursors all need the same
thing: remember what went by, forget the oldest beyond a capacity so a process that runs
for months stays in constant memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["RecentSet"]

K = TypeVar("K", bound=Hashable)


class RecentSet(Generic[K]):
    """A set that keeps the ``capacity`` most recently seen keys (least recent goes)."""

    __slots__ = ("_capacity", "_keys")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._keys: OrderedDict[K, None] = OrderedDict()
        self._capacity = capacity

    @property
    def capacity(self) -> int:
        """How many keys are kept at most."""
        return self._capacity

    def add(self, key: K) -> None:
        """Remember ``key`` as the newest, forgetting the oldest key beyond capacity."""
        keys = self._keys
        if key in keys:
            keys.move_to_end(key)
            return
        keys[key] = None
        if len(keys) > self._capacity:
            keys.popitem(last=False)

    def seen(self, key: K) -> bool:
        """Whether ``key`` was seen; if so it counts as seen again (kept longest)."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def discard(self, key: K) -> None:
        """Forget ``key`` if it is remembered."""
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)
