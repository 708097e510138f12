"""``AsyncPaginator``: walk a cursor-paged list item by item, or page by page.

``async for message in client.iter_messages(cid)`` yields every ``Message`` across
pages, fetching the next page only when the current one is used up (as openai-python's
``AsyncPaginator``); ``.pages()`` walks the same list one page at a time, and
``await client.iter_messages(cid)`` is the first page alone (as in openai-python).

The walk ends at a null (or blank) cursor, when the endpoint says there is no more (``has_more``),
or when the server hands back a cursor it already gave: an echoed cursor on an empty page
ends it quietly; a cycle (A -> B -> A) ends it with a warning, after yielding the page
that closed the cycle.  So does a page with exactly the items of the one before, under a
fresh cursor.  A server stuck either way can never make a caller loop forever.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Sequence,
)
from typing import Any, Generic, Protocol, TypeVar

from ._seen import RecentSet

__all__ = ["AsyncPaginator"]

logger = logging.getLogger("opentrain_async")

CURSOR_MEMORY = 100_000
"""Cursors remembered per walk to detect a cycle (bounded: a walk may be endless)."""


class _Page(Protocol):
    @property
    def next_cursor(self) -> str | None: ...


P = TypeVar("P", bound=_Page)
T = TypeVar("T")


class AsyncPaginator(AsyncIterator[T], Generic[P, T]):
    """Every item of a paged list, fetched lazily; ``pages()`` for page-by-page use.

    Iterating the paginator itself continues one walk, which tasks may share (each item
    goes to one of them); each ``pages()`` call starts a new walk from the first cursor.
    """

    def __init__(
        self,
        fetch: Callable[[str | None], Awaitable[P]],
        items: Callable[[P], Sequence[T]],
        *,
        cursor: str | None = None,
        more: Callable[[P], bool] | None = None,
    ) -> None:
        self._fetch = fetch
        self._items = items
        self._cursor = cursor
        self._more = more
        self._walk: AsyncGenerator[T, None] | None = None
        self._turn = asyncio.Lock()
        self.repeated_cursor = False
        """True once a walk ended because the server handed back a cursor it had
        already given, or the same page again (so the list may go on beyond what was
        seen)."""

    def pages(self) -> AsyncGenerator[P, None]:
        """The pages, one per request, starting again from the first cursor."""
        return self._pages()

    def __await__(self) -> Generator[Any, None, P]:
        """``await client.iter_messages(cid)`` (openai-python's habit): the first page,
        as the one-page call returns it.  The walk is not touched: iterating afterwards
        starts at the first item, and each await fetches the page again."""
        return self._fetch(self._cursor).__await__()

    def __aiter__(self) -> AsyncPaginator[P, T]:
        return self

    async def __anext__(self) -> T:
        if self._walk is None:
            self._walk = self._each_item()
        # Worker tasks may share one paginator (``async for m in walk`` in each): one
        # at a time, or the generator raises "asynchronous generator is already running".
        async with self._turn:
            return await self._walk.__anext__()

    async def aclose(self) -> None:
        """Stop the walk (no further page is fetched)."""
        if self._walk is not None:
            await self._walk.aclose()

    async def _each_item(self) -> AsyncGenerator[T, None]:
        async for page in self._pages():
            for item in self._items(page):
                yield item

    async def _pages(self) -> AsyncGenerator[P, None]:
        cursor = self._cursor
        seen: RecentSet[str] = RecentSet(CURSOR_MEMORY)
        if cursor is not None:
            seen.add(cursor)
        previous: Sequence[T] = ()
        while True:
            page = await self._fetch(cursor)
            next_cursor = page.next_cursor
            items = self._items(page)
            if next_cursor is not None and next_cursor == cursor and not items:
                self.repeated_cursor = True
                return  # an empty page that echoes its cursor: nothing more, now
            if items and items == previous:
                # The same items again under a new cursor: a server stuck on one page
                # would otherwise be walked forever, yielding them again and again.
                self.repeated_cursor = True
                logger.warning(
                    "the server answered the same page again under a new cursor; stopping "
                    "the walk instead of repeating it"
                )
                return
            previous = items
            yield page
            if not (next_cursor and next_cursor.strip()):
                return  # null, or a blank cursor that could not be passed back: the end
            if self._more is not None and not self._more(page):
                return
            if next_cursor in seen:
                self.repeated_cursor = True
                if next_cursor != cursor:
                    logger.warning(
                        "the server answered a page with a cursor it had already given "
                        "(a cycle); stopping the walk instead of repeating pages"
                    )
                return
            seen.add(next_cursor)
            cursor = next_cursor
