"""``opentrain-async conversations`` and ``messages``: the read side, from a shell.

Both print one line per item (or the API's objects as JSON Lines with ``--json``).
``messages --max N`` shows the latest N messages in time order.
``messages --follow`` tails a conversation: it polls the newest page every
``--interval`` seconds and prints messages it has not shown yet, oldest first, until
interrupted (or until ``--max`` messages were shown); a poll that finds none it has
shown pages back until it does, so a burst larger than a page is printed whole.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from datetime import datetime, timezone
from typing import Any, TextIO, cast

from opentrain_async._answers import masked, secret_forms
from opentrain_async._client import OpenTrainClient
from opentrain_async._config import Settings
from opentrain_async._logs import terminal_safe
from opentrain_async._models import Message, WireModel
from opentrain_async._read_models import Conversation
from opentrain_async._seen import RecentSet

__all__ = [
    "list_conversations",
    "print_json",
    "show_messages",
    "terminal_safe",
    "without_token",
    "without_token_in",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SEEN_MEMORY = 10_000  # message ids remembered by --follow (bounded)
_C1 = re.compile("[\x7f-\x9f]")


def without_token_in(text: str, out: TextIO) -> str:
    """``text`` with the token masked when ``out`` is a ``without_token`` stream: for
    text cut before it is written (a token straddling the cut would otherwise be
    printed all but its last characters)."""
    return masked(text, out.forms) if isinstance(out, _WithoutToken) else text


def _line(text: str, out: TextIO, width: int = 80) -> str:
    """``text`` on one line, cut to ``width``; the token masked *before* the cut."""
    text = terminal_safe(" ".join(without_token_in(text, out).split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def _timestamp(record: WireModel, key: str) -> str:
    return str(record.to_dict().get(key) or "-")


def print_json(obj: WireModel, out: TextIO) -> None:
    """One JSON line (the API's shape); C1 controls and DEL escaped too (json escapes
    only C0 ones)."""
    text = json.dumps(obj.to_dict(), ensure_ascii=False)
    print(_C1.sub(lambda char: f"\\u{ord(char.group()):04x}", text), file=out, flush=True)


def _print_conversation(conv: Conversation, out: TextIO) -> None:
    last = conv.last_message
    preview = ""
    if last is not None:
        who = "you" if last.is_from_viewer else (last.sender_user_id or "them")
        preview = f"  {terminal_safe(who)}: {_line(last.content, out, 60)}"
    print(
        f"{terminal_safe(conv.id)}  {terminal_safe(conv.bucket or '-'):<8} "
        f"unread {conv.unread_count:<3} updated {_timestamp(conv, 'updatedAt')}{preview}",
        file=out,
        flush=True,
    )


def _print_message(message: Message, out: TextIO) -> None:
    who = "you" if message.is_from_viewer else (message.sender_user_id or "them")
    print(
        f"{_timestamp(message, 'createdAt')}  {terminal_safe(message.id)}  {terminal_safe(who)}: "
        f"{_line(message.content, out, 200)}",
        file=out,
        flush=True,
    )


class _WithoutToken:
    """``out`` with every spelling of the token written as ``***``: a message's content
    is the server's to say, and a hostile server (or a colleague pasting it into a chat)
    may put the token there; the CLI never prints it (the SDK returns data as is)."""

    def __init__(self, out: TextIO, token: str) -> None:
        self._out = out
        self.forms = secret_forms(token)

    def write(self, text: str) -> int:
        return self._out.write(masked(text, self.forms))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


def without_token(out: TextIO, settings: Settings) -> TextIO:
    """``out`` that never shows ``settings``' token (see ``_WithoutToken``)."""
    return cast(TextIO, _WithoutToken(out, settings.token))


async def list_conversations(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Print every conversation (up to ``--max``), most recently updated first."""
    out = without_token(out, settings)
    shown = 0
    async with OpenTrainClient(settings.token, settings.api_root) as client:
        async for conv in client.iter_conversations(
            filter=args.filter, unread_only=args.unread, limit=args.limit
        ):
            if args.max is not None and shown >= args.max:
                return 0
            print_json(conv, out) if args.json else _print_conversation(conv, out)
            shown += 1
    return 0


async def _newest(
    client: OpenTrainClient,
    args: argparse.Namespace,
    seen: RecentSet[str],
    newest_at: datetime | None,
) -> list[Message]:
    """``--follow``'s poll: the newest page, and when it holds no message shown yet
    (more new ones than a page holds), older pages until one does or is older than
    the newest shown (or the start, or an empty page or one walked already: a server
    minting a cursor per page kept the walk going for good), else the older new ones
    would never show.  Not on the first poll (``newest_at`` None): that shows the
    latest page only."""
    page = await client.read_messages(args.conversation_id, limit=args.limit)
    batch = list(page.messages)
    cursors: set[str] = set()  # a server handing back a cursor ends the walk
    walked: set[str] = set()  # the ids of the pages before: one of them again ends it
    while (
        newest_at is not None
        and page.next_cursor
        and page.next_cursor not in cursors
        and page.messages  # an empty page (cursors minted without end) ends it too
        and len(batch) < _SEEN_MEMORY  # what the seen set could tell apart
        and not any(
            m.id in seen or m.id in walked or m.created_at < newest_at for m in page.messages
        )
    ):
        cursors.add(page.next_cursor)
        walked.update(m.id for m in page.messages)
        page = await client.read_messages(
            args.conversation_id, limit=args.limit, cursor=page.next_cursor
        )
        batch.extend(page.messages)
    return batch


async def show_messages(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Print a conversation's messages; with ``--follow``, keep printing new ones."""
    out = without_token(out, settings)
    shown = 0
    seen: RecentSet[str] = RecentSet(_SEEN_MEMORY)

    def emit(messages: list[Message]) -> bool:
        """Print the unseen ones oldest first; False once ``--max`` were shown (as the
        last is printed: ``--follow`` must not wait for one more message to end)."""
        nonlocal shown
        for message in sorted(messages, key=lambda m: (m.created_at, m.id)):
            if message.id in seen:
                continue
            seen.add(message.id)
            if args.max is not None and shown >= args.max:
                return False
            print_json(message, out) if args.json else _print_message(message, out)
            shown += 1
        return args.max is None or shown < args.max

    async with OpenTrainClient(settings.token, settings.api_root) as client:
        if not args.follow and args.max is not None and args.direction == "older":
            # The latest N, shown in time order: collect (N at most), then print.
            latest: list[Message] = []
            pages = client.iter_messages(args.conversation_id, limit=args.limit).pages()
            async for page in pages:
                latest.extend(page.messages)
                if len(latest) >= args.max:
                    break
            latest.sort(key=lambda m: (m.created_at, m.id))
            emit(latest[-args.max :])
            return 0
        if not args.follow:
            walk = client.iter_messages(
                args.conversation_id, direction=args.direction, limit=args.limit
            )
            async for page in walk.pages():  # each page printed in time order
                if not emit(list(page.messages)):
                    return 0
            return 0
        newest_at: datetime | None = None  # the newest message polled (None: first poll)
        while True:  # tail: the newest page, again and again
            batch = await _newest(client, args, seen, newest_at)
            if not emit(batch):
                return 0
            newest_at = max((m.created_at for m in batch), default=newest_at or _EPOCH)
            await asyncio.sleep(args.interval)
