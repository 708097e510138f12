"""The read side of ``OpenTrainClient``: conversations, messages, updates, identity.

``ReadMixin`` is one of ``OpenTrainClient``'s bases; every method goes through the
``Requester`` it was given (the client's pipeline) and so shares the client's semaphore
and retry policy (GETs retry 502/503/504 and network failures); reads are not paced
(pacing counts sends only).  Parameters are validated locally before any request
(``InvalidRequestError`` naming the field and the rule).

Every read takes ``timeout=`` and ``max_retries=`` for that call alone (see
``OpenTrainClient.with_options``).  ``iter_*`` return an ``AsyncPaginator``: items
across pages, or ``.pages()``; it fetches one page at a time and ends at a null cursor
or a cursor seen before (see ``_pagination``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp

from ._listen import CursorStore, Listener, ListenStart, ReplyLog, listen_messages
from ._listen_position import opened_store
from ._models import Message
from ._pagination import AsyncPaginator
from ._read_models import (
    Capabilities,
    Conversation,
    ConversationPage,
    Event,
    EventPage,
    MessagePage,
    Preflight,
    PreflightProblem,
    ProposalConversation,
    WhoAmI,
    parse_capabilities,
    parse_conversation_page,
    parse_event_page,
    parse_message_page,
    parse_proposal_conversation,
    parse_whoami,
)
from ._time import Clock
from ._validation import (
    check_sleep,
    path_segment,
    validate_bool,
    validate_choice,
    validate_conversation_id,
    validate_cursor,
    validate_limit,
)

__all__ = [
    "CONVERSATION_FILTERS",
    "MESSAGE_DIRECTIONS",
    "ConversationFilter",
    "Direction",
    "ReadMixin",
]

ConversationFilter = Literal["all", "job", "proposal"]
Direction = Literal["older", "newer"]
CONVERSATION_FILTERS: tuple[str, ...] = ("all", "job", "proposal")
MESSAGE_DIRECTIONS: tuple[str, ...] = ("older", "newer")
MAX_MESSAGES_LIMIT = 100
MAX_UPDATES_LIMIT = 200
WRITE_SCOPE = "messages:write"


def _conversations_of(page: ConversationPage) -> tuple[Conversation, ...]:
    return page.conversations


def _messages_of(page: MessagePage) -> tuple[Message, ...]:
    return page.messages


def _events_of(page: EventPage) -> tuple[Event, ...]:
    return page.events


def _has_more(page: EventPage) -> bool:
    return page.has_more


class Requester(Protocol):
    """What the reads send through: the request pipeline (``_pipeline.Pipeline``)."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> tuple[int, Any]: ...


class ReadMixin:
    """Reading conversations, messages and the updates feed; identity and preflight.

    A base of ``OpenTrainClient`` whose dependencies are explicit: ``_init_reads`` hands
    it a ``requester`` (a ``Requester`` for a call's timeout and retry budget: the
    request pipeline's ``for_call``), the client's time seam and where ``listen()``
    keeps its cursor by default.  It knows nothing else of the client.  A base rather
    than an object the client holds: these methods are the client's public surface,
    and forwarding each of them would write every signature and docstring twice.
    """

    _requester: Callable[[float | aiohttp.ClientTimeout | None, int | None], Requester]
    _read_clock: Clock
    _cursor_path: Callable[[], Path]
    _replies: ReplyLog

    def _init_reads(
        self,
        requester: Callable[[float | aiohttp.ClientTimeout | None, int | None], Requester],
        clock: Clock,
        cursor_path: Callable[[], Path],
    ) -> None:
        """Wire the reads to what they send through (called by the client)."""
        self._requester = requester
        self._read_clock = clock
        self._cursor_path = cursor_path
        # Ids of this client's replies (reply()), saved with listen()'s position; a
        # with_options copy (whose __dict__ is the parent's) keeps the parent's log.
        replies = self.__dict__.get("_replies")
        self._replies = ReplyLog() if replies is None else replies

    # -- conversations -----------------------------------------------------------------

    async def list_conversations(
        self,
        *,
        filter: ConversationFilter = "all",  # the API's own parameter name
        unread_only: bool = False,
        limit: int = 20,
        cursor: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> ConversationPage:
        """One page of the conversations this account participates in (GET /messages).

        ``filter`` is ``all``, ``job`` or ``proposal``; ``limit`` 1-100.  Pass the page's
        ``next_cursor`` back as ``cursor`` for the next page (None: last page).
        """
        params = self._conversation_params(filter, unread_only, limit, cursor)
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("GET", "/messages", params=params)
        return parse_conversation_page(payload, status, "GET", "/messages")

    def iter_conversations(
        self,
        *,
        filter: ConversationFilter = "all",  # the API's own parameter name
        unread_only: bool = False,
        limit: int = 20,
        cursor: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> AsyncPaginator[ConversationPage, Conversation]:
        """Every conversation, across pages fetched lazily (``limit`` per page).

        ``async for conversation in client.iter_conversations()``; page by page with
        ``.pages()``.  Parameters are checked now, before anything is fetched.
        """
        self._conversation_params(filter, unread_only, limit, cursor)

        def fetch(at: str | None) -> Awaitable[ConversationPage]:
            return self.list_conversations(
                filter=filter,
                unread_only=unread_only,
                limit=limit,
                cursor=at,
                timeout=timeout,
                max_retries=max_retries,
            )

        return AsyncPaginator(fetch, _conversations_of, cursor=cursor)

    @staticmethod
    def _conversation_params(
        filter: object,
        unread_only: object,
        limit: object,
        cursor: object,
    ) -> dict[str, str]:
        params = {
            "filter": validate_choice(filter, "filter", CONVERSATION_FILTERS),
            "limit": str(validate_limit(limit, MAX_MESSAGES_LIMIT)),
        }
        if validate_bool(unread_only, "unreadOnly"):
            params["unreadOnly"] = "true"
        checked = validate_cursor(cursor)
        if checked is not None:
            params["cursor"] = checked
        return params

    # -- messages ----------------------------------------------------------------------

    async def read_messages(
        self,
        conversation_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        direction: Direction = "older",
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> MessagePage:
        """One page of a conversation's messages (GET /messages?conversationId=...).

        ``direction="older"`` (default) pages back in time from the newest message;
        ``"newer"`` pages forward.  Pass ``next_cursor`` back with the same direction.
        The order of messages inside a page is the server's: sort if it matters.
        """
        params = self._message_params(conversation_id, limit, cursor, direction)
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("GET", "/messages", params=params)
        return parse_message_page(payload, status, "GET", "/messages")

    def iter_messages(
        self,
        conversation_id: str,
        *,
        direction: Direction = "older",
        limit: int = 20,
        cursor: str | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> AsyncPaginator[MessagePage, Message]:
        """Every message of a conversation in ``direction``, across pages fetched lazily.

        ``async for message in client.iter_messages(cid)``; ``limit`` is the page size;
        page by page with ``.pages()``.  The order inside a page is the server's.
        """
        self._message_params(conversation_id, limit, cursor, direction)

        def fetch(at: str | None) -> Awaitable[MessagePage]:
            return self.read_messages(
                conversation_id,
                limit=limit,
                cursor=at,
                direction=direction,
                timeout=timeout,
                max_retries=max_retries,
            )

        return AsyncPaginator(fetch, _messages_of, cursor=cursor)

    @staticmethod
    def _message_params(
        conversation_id: object, limit: object, cursor: object, direction: object
    ) -> dict[str, str]:
        params = {
            "conversationId": validate_conversation_id(conversation_id),
            "limit": str(validate_limit(limit, MAX_MESSAGES_LIMIT)),
            "direction": validate_choice(direction, "direction", MESSAGE_DIRECTIONS),
        }
        checked = validate_cursor(cursor)
        if checked is not None:
            params["cursor"] = checked
        return params

    # -- proposals ---------------------------------------------------------------------

    async def start_proposal_conversation(
        self,
        proposal_id: str,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> ProposalConversation:
        """Open (or get) the pre-hire conversation of a proposal you own the job of.

        Idempotent on the server (``created`` is True only the first time), so it is safe
        to call again after an error whose outcome is unknown.  Raises
        ``ConflictError`` (``proposal_not_ready_for_messaging``), ``PermissionDeniedError``
        (scope, feature, claim, another account's job, or
        ``employer_first_message_required`` for the candidate), ``NotFoundError``.
        """
        path = f"/proposals/{path_segment(proposal_id, 'proposalId')}/conversation"
        # Idempotent on the server (get-or-create): safe to retry like a GET.
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("POST", path, idempotent=True)
        return parse_proposal_conversation(payload, status, "POST", path)

    # -- the updates feed ----------------------------------------------------------------

    async def get_updates(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> EventPage:
        """One page of the account's event feed (GET /updates), oldest first.

        Omit ``cursor`` to start at the beginning of the account's history; persist
        ``next_cursor`` and pass it back (an empty page echoes your cursor).  Events of
        types this SDK does not know pass through as plain ``Event`` records.  One bad
        record does not fail the page: an optional field that does not parse is None, an
        event that cannot be read is left out, each with a WARNING naming its id.
        """
        params = {"limit": str(validate_limit(limit, MAX_UPDATES_LIMIT))}
        checked = validate_cursor(cursor)
        if checked is not None:
            params["cursor"] = checked
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("GET", "/updates", params=params)
        return parse_event_page(payload, status, "GET", "/updates")

    def iter_updates(
        self,
        *,
        cursor: str | None = None,
        limit: int = 100,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> AsyncPaginator[EventPage, Event]:
        """Every event of the feed available now, oldest first; ends when caught up.

        Stops after a page with ``has_more`` False, a null cursor, or an empty page
        that echoes the cursor; page by page with ``.pages()`` (persist each page's
        ``next_cursor``).  For a never-ending bot loop use ``listen()``.
        """
        validate_limit(limit, MAX_UPDATES_LIMIT)
        validate_cursor(cursor)

        def fetch(at: str | None) -> Awaitable[EventPage]:
            return self.get_updates(
                cursor=at, limit=limit, timeout=timeout, max_retries=max_retries
            )

        return AsyncPaginator(fetch, _events_of, cursor=cursor, more=_has_more)

    def listen(
        self,
        *,
        store: CursorStore | str | Path | None = None,
        start: ListenStart = "latest",
        limit: int = 100,
        idle_backoff: float = 1.0,
        max_idle_backoff: float = 30.0,
        backoff_factor: float = 2.0,
        until_idle: bool = False,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        lock_timeout: float | None = None,
    ) -> Listener:
        """New incoming messages, forever: a bot's main loop (see ``_listen``)::

            async with client.listen() as messages:
                async for message in messages:
                    await client.reply(message, "thanks!")

        Polls /updates, follows each ``message.received`` event to the message itself,
        skips the account's own messages and yields the rest.  The position is saved in
        ``store`` (a ``CursorStore``, a path for a JSON file, or None for the default
        JSON file ``${XDG_STATE_HOME:-~/.local/state}/opentrain_async/listen-<id>.json``,
        one per API root and token) after each message the consumer finished: when it
        asks for the next one, or leaves the ``async with`` block without an exception.
        A restarted bot neither replays what it finished nor misses what arrived while
        it was down; the one message it was handling when it died comes back (answer it
        with ``reply()``, which finds an answer already sent).  See ``Listener``.  With
        no saved position, ``start`` says where to begin: ``"latest"`` (skip history) or
        ``"beginning"``.  When idle it waits ``idle_backoff`` seconds, growing by
        ``backoff_factor`` up to ``max_idle_backoff``; ``until_idle=True`` returns
        instead (for cron-style runs).  The waits go through the client's ``sleep``
        unless ``sleep`` is given here.  One listener at a time holds a cursor file: a
        second ``listen()`` on it (a new bot started before the old one stopped) waits
        for the first to end, at most ``lock_timeout`` seconds (None: as long as it takes).
        """
        if sleep is not None:
            check_sleep(sleep)
        if store is None:
            store = self._cursor_path()
        return listen_messages(
            self,
            store=opened_store(store, lock_timeout, self._read_clock),
            start=start,
            limit=limit,
            idle_backoff=idle_backoff,
            max_idle_backoff=max_idle_backoff,
            backoff_factor=backoff_factor,
            until_idle=until_idle,
            replies=self._replies,
            sleep=self._read_clock.sleep if sleep is None else sleep,
            clock=self._read_clock.monotonic,
        )

    # -- identity and preflight ------------------------------------------------------------

    async def whoami(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> WhoAmI:
        """Who this token acts as, its scopes, and its account (GET /auth/me)."""
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("GET", "/auth/me")
        return parse_whoami(payload, status, "GET", "/auth/me")

    async def capabilities(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> Capabilities:
        """The account's feature flags (GET /job-drafts/capabilities)."""
        path = "/job-drafts/capabilities"
        client = self._requester(timeout, max_retries)
        status, payload = await client.request("GET", path)
        return parse_capabilities(payload, status, "GET", path)

    async def preflight(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> Preflight:
        """Whether this token can send, checked without a write; if not, what to fix.

        Reads ``whoami()`` and ``capabilities()`` and reports each missing piece: the
        ``messages:write`` scope, a claimed account (with the claim URL when the server
        gives one), the ``messagingWrites`` capability.  A flag the server does not
        report is not counted as missing.  ``timeout`` and ``max_retries`` apply to
        each of the two reads.
        """
        me = await self.whoami(timeout=timeout, max_retries=max_retries)
        caps = await self.capabilities(timeout=timeout, max_retries=max_retries)
        problems: list[PreflightProblem] = []
        account = me.account
        if account.claimed is False:
            problems.append(
                PreflightProblem(
                    code="account_not_claimed",
                    missing="claimed account",
                    fix=(
                        "claim the account (agent-registered accounts must be claimed by "
                        "a person before they can send)"
                        + (f" at {account.claim_url}" if account.claim_url else "")
                    ),
                    url=account.claim_url,
                )
            )
        if not me.has_scope(WRITE_SCOPE):
            problems.append(
                PreflightProblem(
                    code="missing_scope",
                    missing=WRITE_SCOPE,
                    fix=(
                        f"create an API token with the {WRITE_SCOPE} scope in the OpenTrain "
                        f"web app's API token settings (this token has: "
                        f"{', '.join(me.token.scopes) or 'no scopes'})"
                    ),
                )
            )
        if caps.messaging_writes is False:
            problems.append(
                PreflightProblem(
                    code="messaging_writes_disabled",
                    missing="messagingWrites",
                    fix=(
                        "the account's public_api_messaging_writes feature is off: ask "
                        "OpenTrain support to enable public API messaging for the account"
                    ),
                )
            )
        return Preflight(
            can_send=not problems, problems=tuple(problems), whoami=me, capabilities=caps
        )
