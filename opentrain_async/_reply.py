"""``reply()``: answer an incoming message once, even when it is handled twice.

A bot that dies after sending its answer but before ``listen()`` saved that the message
was finished meets the message again on restart.  POST /messages has no idempotency key
and no "in reply to" field, so the answer is tied to the incoming message by read-back:
before sending, the conversation is read back to the incoming message, and a message of
ours with exactly this content, stamped at or after the incoming one (both stamps are
the server's), that is not already another send's or another reply's, *is* the answer.
Found: returned, nothing sent.  Not there: sent, with read-back on an unknown outcome.

Another reply with the same text in the same conversation is told apart by id: every
message this client sent is claimed, and so is every reply in the ``ReplyLog`` (which
``listen()`` saves with its position, so this holds across restarts) except the replies
to this very message.  One answer per incoming message and text: asked twice, even at
once (``ReplyLog.turn``), ``reply`` returns the first.  Without ``listen()`` a new
process has no log: an answer with the same text to an earlier message, stamped after
this one, is taken for this one's.  No rule on the server's data alone avoids that
without answering twice where the answer *was* this one's (out of order, then a crash):
see tests/test_reply_without_listen.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ._delivery import ClaimedIds, Delivery, MessageReader, find_own_message
from ._errors import DeliveryUnknownError, InvalidRequestError
from ._listen import ReplyLog
from ._models import Message
from ._validation import validate_content

__all__ = ["REPLY_SKEW", "reply_once"]

logger = logging.getLogger("opentrain_async")

REPLY_PAGE_SIZE = 20
"""Messages per page read back: an answer is among the few newer than the message."""
REPLY_SKEW = 2.0
"""Seconds before the incoming message an answer may be stamped and still count: both
stamps are the server's, so this only covers its own nodes' clocks disagreeing."""


async def reply_once(
    delivery: Delivery,
    reader: MessageReader,
    replies: ReplyLog,
    incoming: Message,
    content: str,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Message:
    """Our answer to ``incoming``: found by read-back if already sent, else sent now."""
    if not isinstance(incoming, Message):
        raise InvalidRequestError(
            f"reply() answers a Message (as listen() yields), got {type(incoming).__name__}",
            field="incoming",
            limit="a Message",
            actual=type(incoming).__name__,
        )
    if incoming.is_from_viewer:
        raise InvalidRequestError(
            f"message {incoming.id} is the account's own: reply() answers incoming messages",
            field="incoming",
            limit="a message from someone else (is_from_viewer False)",
            actual="is_from_viewer True",
        )
    validate_content(content)
    async with replies.turn(incoming.id, content):
        return await _answer(delivery, reader, replies, incoming, content, clock=clock)


async def _answer(
    delivery: Delivery,
    reader: MessageReader,
    replies: ReplyLog,
    incoming: Message,
    content: str,
    *,
    clock: Callable[[], float],
) -> Message:
    """``reply_once`` in its turn: read back, then send only if nothing was found."""
    conversation_id = incoming.conversation_id
    since = incoming.created_at.timestamp()
    unknown = DeliveryUnknownError(
        f"could not check whether message {incoming.id} in {conversation_id} was already "
        "answered; not sending",
        conversation_id=conversation_id,
        started_at=since,
    )
    found = await find_own_message(
        reader,
        conversation_id,
        content,
        since=since,
        skew=REPLY_SKEW,
        claimed=_ClaimedExcept(delivery.claimed, replies.answers_to(incoming.id), incoming.id),
        cause=unknown,
        clock=clock,
        page_size=REPLY_PAGE_SIZE,
    )
    if found is not None:
        logger.info(
            "message %s in %s was already answered (message %s): not sending again",
            incoming.id,
            conversation_id,
            found.id,
        )
        replies.add(found.id, incoming.id)
        return found
    message, _ = await delivery.deliver(conversation_id, content, True)
    replies.add(message.id, incoming.id)
    return message


class _ClaimedExcept(ClaimedIds):
    """``claimed``, less the ids of this message's own replies (found ids go to it), and
    the message answered itself: never its own answer (our text, and no
    ``isFromViewer``: read-back refused to guess whose it was, and nothing was sent)."""

    def __init__(self, claimed: ClaimedIds, ours: set[str], answered: str) -> None:
        super().__init__(capacity=1)
        self._claimed = claimed
        self._ours = ours
        self._answered = answered

    def add(self, message_id: str) -> None:
        self._claimed.add(message_id)

    def __contains__(self, message_id: object) -> bool:
        if message_id == self._answered:
            return True
        return message_id not in self._ours and message_id in self._claimed

    def known_ours(self, message_id: str) -> bool:
        """This message's own earlier answer (the ``ReplyLog``): ours, said or not."""
        return message_id in self._ours
