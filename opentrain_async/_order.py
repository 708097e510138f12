"""Order within a conversation: one FIFO chain per conversation, feeding the bulk workers.

A bulk worker that pulls an input whose conversation already has an input in progress
*parks* it at the back of that conversation's chain and pulls again, so other
conversations never wait behind it (no head-of-line blocking).  The worker that finishes
a conversation's input takes the next one of that chain itself, once the outcome is
known (delivered, or failed for good after every 429 wait and read-back): input k+1 of a
conversation is sent only after input k has its outcome.

Memory stays bounded: at most ``limit`` inputs are parked.  Past that, workers stop
pulling until a chain moves on (a job of one long conversation is then as serial as it
must be; its inputs are not read ahead without bound).

When an input fails for good, ``stop`` (the default) ends its conversation: what is
parked, and every later input of it, gets ``BlockedByEarlierFailureError`` naming the
input that failed.  ``continue`` sends them anyway, still one after the other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Literal

from ._errors import BlockedByEarlierFailureError, ConfigurationError, OpenTrainError
from ._validation import check_flag

__all__ = ["DEFAULT_PARKED", "Chains", "OnFailure", "Parked", "blocked_error", "order_chains"]

OnFailure = Literal["stop", "continue"]

DEFAULT_PARKED = 4096
"""Inputs parked behind an earlier input of their conversation, at most (plus 16 per
worker): ~1 MB of tuples, and enough read-ahead for thousands of conversations of a few
parts each to be in flight at once."""

Parked = tuple[int, Any, "str | None", str, Any]
"""A parked input: index, the item as given, key, conversation id, and its content (or
the ``InvalidRequestError`` its content raised, to be its outcome in its turn)."""


class _Failed:
    """What ended a conversation: the input that failed for good."""

    __slots__ = ("error", "index", "key")

    def __init__(self, index: int | None, key: str | None, error: OpenTrainError) -> None:
        self.index = index
        self.key = key
        self.error = error


def blocked_error(
    conversation_id: str, index: int | None, key: str | None, error: OpenTrainError | None
) -> BlockedByEarlierFailureError:
    """The outcome of an input whose conversation stopped at input ``index``."""
    which = "an input of an earlier run" if index is None else f"input #{index}"
    if key is not None:
        which += f" (key {key!r})"
    why = ""
    if error is not None:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        why = f": {first[:200]}"
    return BlockedByEarlierFailureError(
        f"not sent: {which} of conversation {conversation_id} failed for good{why}; "
        "later inputs of a conversation are sent only after the earlier ones (pass "
        "on_failure='continue' to send them anyway, or ordered=False)",
        waited_on=index,
        waited_on_key=key,
        cause=error,
    )


class Chains:
    """The per-conversation chains of one bulk run (one event loop, no locks needed)."""

    def __init__(self, limit: int, on_failure: OnFailure = "stop") -> None:
        self.limit = limit
        self.on_failure = on_failure
        self.parked = 0
        """Inputs waiting in a chain right now."""
        self.peak_parked = 0
        self._busy: dict[str, deque[Parked] | None] = {}
        """Conversations with an input in progress, and what waits behind it."""
        self.failed: dict[str, _Failed] = {}
        """Conversations stopped by a failure for good (empty on a good day: the
        workers look here only when it is not)."""
        self._room = asyncio.Event()
        self._room.set()

    @property
    def full(self) -> bool:
        return self.parked >= self.limit

    async def room(self) -> None:
        """Wait until an input may be pulled again (a chain moved on)."""
        await self._room.wait()

    def wake(self) -> None:
        """Let every worker waiting for room look again (the run is ending)."""
        self._room.set()

    def stopped(self, conversation_id: str) -> BlockedByEarlierFailureError | None:
        """The outcome of a new input of a conversation that failed for good, else None."""
        failed = self.failed.get(conversation_id)
        if failed is None:
            return None
        return blocked_error(conversation_id, failed.index, failed.key, failed.error)

    def stop(
        self,
        conversation_id: str,
        index: int | None,
        key: str | None,
        error: OpenTrainError | None,
    ) -> None:
        """End a conversation before the run reaches it (a resumed job whose journal
        has an input of it that failed for good): its inputs get blocked outcomes."""
        failed = _Failed(index, key, error if error is not None else _earlier())
        self.failed.setdefault(conversation_id, failed)

    def enter(self, parked: Parked) -> bool:
        """True when the input's conversation is free (the caller now holds it); else it
        is parked at the back of its chain and False."""
        busy = self._busy
        conversation_id = parked[3]
        if conversation_id not in busy:
            busy[conversation_id] = None  # held, nothing behind it (no deque until needed)
            return True
        chain = busy[conversation_id]
        if chain is None:
            chain = busy[conversation_id] = deque()
        chain.append(parked)
        self.parked += 1
        if self.parked > self.peak_parked:
            self.peak_parked = self.parked
        if self.parked >= self.limit:
            self._room.clear()
        return False

    def next(self, conversation_id: str) -> Parked | None:
        """The held input has its outcome: the next one of its chain (the caller still
        holds the conversation), or None (the conversation is free)."""
        busy = self._busy
        chain = busy.get(conversation_id)
        if not chain:
            busy.pop(conversation_id, None)
            return None
        self._took(1)
        return chain.popleft()

    def take(self, conversation_id: str) -> list[Parked]:
        """Every input parked behind the held one; the caller still holds the
        conversation (inputs pulled meanwhile park behind it)."""
        chain = self._busy.get(conversation_id)
        if not chain:
            return []
        taken = list(chain)
        chain.clear()
        self._took(len(taken))
        return taken

    def fail(
        self, conversation_id: str, index: int, key: str | None, error: OpenTrainError
    ) -> None:
        """Free the conversation as failed for good at input ``index``: its later inputs
        get ``stopped``'s outcome (take what is parked first)."""
        self.failed[conversation_id] = _Failed(index, key, error)
        self._busy.pop(conversation_id, None)

    def release(self, conversation_id: str) -> list[Parked]:
        """Free the conversation and hand back every input parked behind it."""
        taken = self.take(conversation_id)
        self._busy.pop(conversation_id, None)
        return taken

    def drain(self) -> list[Parked]:
        """Every parked input of every chain (the run was stopped), oldest first."""
        left = sorted(
            (p for chain in self._busy.values() if chain for p in chain), key=lambda p: p[0]
        )
        self._busy.clear()
        self._took(len(left))
        return left

    def _took(self, n: int) -> None:
        self.parked -= n
        if self.parked < self.limit:
            self._room.set()


def _earlier() -> OpenTrainError:
    return OpenTrainError("it failed for good in an earlier run (see the journal)")


def order_chains(ordered: bool, on_failure: OnFailure, concurrency: int) -> Chains | None:
    """The chains that keep each conversation in order (None: ``ordered=False``)."""
    if on_failure not in ("stop", "continue"):
        raise ConfigurationError(f"on_failure must be 'stop' or 'continue', got {on_failure!r}")
    check_flag(ordered, "ordered")
    if not ordered:
        return None
    return Chains(DEFAULT_PARKED + 16 * concurrency, on_failure)
