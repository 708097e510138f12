"""The fake server's world: accounts, conversations, messages, events and proposals.

Plain Python, no HTTP: each method is one rule of the documented API (who may send
where, what a page of messages or conversations holds, what the /updates feed shows)
and raises ``ApiError`` with the status, message and ``details`` the real server would
answer. ``FakeOpenTrain`` (``_server``) parses requests into these calls and renders
their results; tests may drive a ``World`` directly. The /updates feeds are ``_feed``'s
and the pages of GET /messages ``_pages``'s (bases of ``World``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, Final

import attrs

from ._feed import FEED_RETENTION, Feed, _iso
from ._limits import RateLimit, hint_parts
from ._models import DEFAULT_SCOPES, ApiError, FakeAccount, FakeConversation
from ._pages import Pages, decode_cursor, encode_cursor

__all__ = [
    "CLAIM_URL",
    "FEED_RETENTION",
    "OTHER_USER",
    "ApiError",
    "World",
    "decode_cursor",
    "encode_cursor",
]

CLAIM_URL: Final = "https://app.opentrain.ai/claim"
OTHER_USER: Final = "user_other"


def _default_now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(timezone.utc)


@attrs.define
class _FakeProposal:
    """A proposal the default account can open (or not) a pre-hire thread for."""

    id: str
    job_id: str
    ready: bool
    employer: str
    candidate: str
    conversation_id: str | None = None
    employer_wrote: bool = False
    """The employer has sent a message in its thread: the candidate may answer."""


class World(Feed, Pages):
    """Everything the fake server knows, and the API's rules over it."""

    def __init__(
        self,
        token: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _default_now,
    ) -> None:
        """A world with one account (`token`, all messaging scopes); `clock` drives rate
        limits, `now` timestamps."""
        self._clock = clock
        self._now = now
        self._origin = clock()
        self._accounts: dict[str, FakeAccount] = {}
        self._user_counter = 0
        self._conversations: dict[str, FakeConversation] = {}
        self._conv_counter = 0
        self._msg_counter = 0
        self._seq = 0
        self._blocked: list[tuple[str, str]] = []
        self._rate_limit: RateLimit | None = None
        self._limiters: dict[str, Any] = {}
        self._events: dict[str, deque[dict[str, Any]]] = {}
        self._event_counter = 0
        self._proposals: dict[str, _FakeProposal] = {}
        self._content_counts: dict[tuple[str, str], int] = {}
        self.committed = 0
        """Messages stored through the API since creation (or ``reset_counts``)."""
        self.duplicates = 0
        """Pairs of conversation and content stored more than once."""
        self.throttled = 0
        """Sends refused by the rate limit."""
        self.default = self.add_token(token)

    @property
    def distinct(self) -> int:
        """Pairs of conversation and content stored at least once."""
        return len(self._content_counts)

    @property
    def accounts(self) -> int:
        """How many tokens are registered."""
        return len(self._accounts)

    @property
    def conversations(self) -> int:
        """How many conversations exist."""
        return len(self._conversations)

    def reset_counts(self) -> None:
        """Zero committed/duplicates/throttled; duplicate tracking restarts."""
        self.committed = self.duplicates = self.throttled = 0
        self._content_counts.clear()

    # ------------------------------------------------------------------ setup

    def add_token(
        self,
        token: str,
        *,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        claimed: bool = True,
        messaging_writes: bool = True,
        user_id: str | None = None,
    ) -> FakeAccount:
        """Register a token; each token is its own viewer user. Returns its mutable account."""
        if token in self._accounts:
            raise ValueError(f"token already registered (for {self._accounts[token].user_id})")
        if user_id is None:
            self._user_counter += 1
            user_id = f"user_{self._user_counter:04d}"
        account = FakeAccount(
            token=token,
            user_id=user_id,
            scopes=frozenset(scopes),
            claimed=claimed,
            messaging_writes=messaging_writes,
        )
        self._accounts[token] = account
        return account

    def account(self, token: str) -> FakeAccount:
        """The mutable account behind `token` (KeyError if unknown)."""
        return self._lookup(token)

    def find(self, token: str | None) -> FakeAccount | None:
        """The account behind `token`, or None (no token, or an unknown one)."""
        return None if token is None else self._accounts.get(token)

    def _lookup(self, token: str | None) -> FakeAccount:
        """The account behind `token` (the default's when None); KeyError never shows it."""
        if token is None:
            return self.default
        account = self._accounts.get(token)
        if account is None:
            raise KeyError("no account has this token") from None
        return account

    def add_conversation(
        self,
        conversation_id: str | None = None,
        *,
        participant: bool = True,
        send_block: str | None = None,
        readable: bool = True,
        job_id: str | None = None,
        proposal_id: str | None = None,
        bucket: str = "job",
        members: Iterable[str | FakeAccount] = (),
    ) -> str:
        """Create a conversation and return its id.

        `participant` says whether the default token's user is in it; `members` adds more
        user ids or accounts. `send_block` makes sends answer 409 with that reason.
        """
        if conversation_id is None:
            while True:
                self._conv_counter += 1
                conversation_id = f"conv_{self._conv_counter:04d}"
                if conversation_id not in self._conversations:
                    break
        elif conversation_id in self._conversations:
            raise ValueError(f"conversation already exists: {conversation_id!r}")
        participants = {OTHER_USER}
        if participant:
            participants.add(self.default.user_id)
        for member in members:
            participants.add(member.user_id if isinstance(member, FakeAccount) else member)
        created = _iso(self._now())
        self._seq += 1
        self._conversations[conversation_id] = FakeConversation(
            id=conversation_id,
            participants=participants,
            created_at=created,
            updated_at=created,
            seq=self._seq,
            send_block=send_block,
            readable=readable,
            job_id=job_id,
            proposal_id=proposal_id,
            bucket=bucket,
        )
        return conversation_id

    def has_conversation(self, conversation_id: str) -> bool:
        """Whether a conversation with this id exists."""
        return conversation_id in self._conversations

    def conversation(self, conversation_id: str) -> FakeConversation:
        """The mutable conversation record (KeyError if unknown)."""
        return self._conversations[conversation_id]

    def add_incoming_message(
        self, conversation_id: str, content: str, *, sender_user_id: str = OTHER_USER
    ) -> dict[str, Any]:
        """Store a message from someone else; returns it as the default viewer sees it."""
        conv = self._conversations[conversation_id]
        conv.participants.add(sender_user_id)
        message = self._store(conv, sender_user_id, content)
        self._announce_message(conv, message)
        return {**message, "isFromViewer": sender_user_id == self.default.user_id}

    def block_content(self, substring: str, *, policy: str = "profanity") -> None:
        """Sends whose content contains `substring` answer 403 message_policy_blocked."""
        self._blocked.append((substring, policy))

    # ------------------------------------------------------------------ read side

    def add_proposal(
        self,
        proposal_id: str,
        *,
        job_id: str = "job_0001",
        ready: bool = True,
        owner: bool = True,
        candidate_user_id: str = OTHER_USER,
    ) -> None:
        """Register a proposal for POST /proposals/{id}/conversation.

        `owner`: the default token's user owns the job (else it is the candidate, and
        the employer is someone else). `ready=False` answers 409
        proposal_not_ready_for_messaging. In the thread, the candidate's sends answer 409
        employer_first_message_required until the employer has written.
        """
        if proposal_id in self._proposals:
            raise ValueError(f"proposal already exists: {proposal_id!r}")
        employer = self.default.user_id if owner else OTHER_USER
        candidate = candidate_user_id if owner else self.default.user_id
        self._proposals[proposal_id] = _FakeProposal(
            id=proposal_id, job_id=job_id, ready=ready, employer=employer, candidate=candidate
        )

    def check_write_access(self, account: FakeAccount) -> None:
        """The write gates shared by sends and proposal conversations."""
        if "messages:write" not in account.scopes:
            raise ApiError(
                403,
                "Token is missing the messages:write scope",
                {"reason": "insufficient_scope", "requiredScope": "messages:write"},
            )
        if not account.messaging_writes:
            raise ApiError(
                403,
                "Messaging writes are not enabled for this account",
                {"reason": "feature_disabled", "feature": "public_api_messaging_writes"},
            )
        if not account.claimed:
            raise ApiError(
                403,
                "Claim this account before sending messages",
                {"reason": "account_claim_required", "claimUrl": CLAIM_URL},
            )

    def set_rate_limit(self, limit: RateLimit | None) -> None:
        """Install (or with None remove) the per-account POST /messages limit; state restarts.

        FixedWindow windows are aligned to the clock's value when this server was created.
        """
        self._rate_limit = limit
        self._limiters.clear()

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """Stored messages in creation order, API shape, as the default viewer sees them."""
        uid = self.default.user_id
        return [
            {**m, "isFromViewer": m["senderUserId"] == uid}
            for m in self._conversations[conversation_id].messages
        ]

    def send(self, account: FakeAccount, conversation_id: str, content: str) -> dict[str, Any]:
        """POST /messages after validation: the spec's order of checks, then the commit."""
        self.check_write_access(account)
        conv = self._conversations.get(conversation_id)
        if conv is None:
            raise ApiError(404, "Conversation not found")
        if account.user_id not in conv.participants:
            raise ApiError(
                403, "You are not a participant in this conversation", {"reason": "not_participant"}
            )
        if conv.send_block is not None:
            raise ApiError(
                409, "Sending is blocked in this conversation", {"reason": conv.send_block}
            )
        if conv.proposal_id is not None:
            self._check_employer_first(conv, account.user_id)
        for substring, policy in self._blocked:
            if substring in content:
                raise ApiError(
                    403,
                    "Message blocked by content policy",
                    {"reason": "message_policy_blocked", "policy": policy},
                )
        limit = self._rate_limit
        if limit is not None:
            limiter = self._limiters.get(account.user_id)
            now = self._clock()
            if limiter is None:
                limiter = limit._limiter(self._origin, now)
                self._limiters[account.user_id] = limiter
            wait = limiter.acquire(now)
            if wait is not None:
                self.throttled += 1
                raise ApiError(429, "Rate limit exceeded", *hint_parts(limit, wait))
        message = self._store(conv, account.user_id, content)
        self._announce_to_accounts(conv, message)
        self.committed += 1
        key = (conversation_id, content)
        seen = self._content_counts.get(key, 0) + 1
        self._content_counts[key] = seen
        if seen == 2:
            self.duplicates += 1
        return message

    def _check_employer_first(self, conv: FakeConversation, user_id: str) -> None:
        """A proposal's pre-hire thread: the candidate cannot send before the employer's
        first message (409 ``employer_first_message_required``, as the spec says)."""
        proposal = self._proposals.get(conv.proposal_id or "")
        if proposal is None or user_id != proposal.candidate or proposal.employer_wrote:
            return
        if any(m["senderUserId"] == proposal.employer for m in conv.messages):
            proposal.employer_wrote = True
            return
        raise ApiError(
            409,
            "The employer must send the first message",
            {"reason": "employer_first_message_required"},
        )

    def proposal_conversation(
        self, account: FakeAccount, proposal_id: str
    ) -> tuple[bool, dict[str, Any]]:
        """POST /proposals/{id}/conversation: idempotent get-or-create; (created, body)."""
        self.check_write_access(account)
        proposal = self._proposals.get(proposal_id)
        if proposal is None:
            raise ApiError(404, "Proposal not found")
        if account.user_id == proposal.candidate:
            raise ApiError(
                403,
                "The employer must send the first message",
                {"reason": "employer_first_message_required"},
            )
        if account.user_id != proposal.employer:
            raise ApiError(403, "This proposal belongs to another account's job")
        if not proposal.ready:
            raise ApiError(
                409,
                "This proposal is not ready for messaging",
                {"reason": "proposal_not_ready_for_messaging"},
            )
        created = proposal.conversation_id is None
        if proposal.conversation_id is None:
            proposal.conversation_id = self.add_conversation(
                job_id=proposal.job_id,
                proposal_id=proposal.id,
                bucket="proposal",
                participant=False,
                members=(proposal.employer, proposal.candidate),
            )
        return created, {
            "ok": True,
            "conversationId": proposal.conversation_id,
            "proposalId": proposal.id,
            "jobId": proposal.job_id,
            "created": created,
        }

    def whoami(self, account: FakeAccount) -> dict[str, Any]:
        """GET /auth/me: actor, token (with scopes) and account.

        ``account.claimed`` / ``account.claimUrl`` are not in the documented shape; the
        fake sends them so preflight's claim check can be exercised.
        """
        n = account.user_id.rsplit("_", 1)[-1]
        return {
            "actor": {
                "userId": account.user_id,
                "email": f"{account.user_id}@example.test",
                "firstName": "Fake",
                "lastName": f"User {n}",
                "fullName": f"Fake User {n}",
                "userType": "EMPLOYER",
            },
            "token": {
                "id": f"tok_{n}",
                "label": "fake token",
                "scopes": sorted(account.scopes),
                "ownerOrganizationId": f"org_{n}",
            },
            "account": {
                "kind": "organization" if account.claimed else "agent",
                "organizationId": f"org_{n}",
                "ownerUserId": account.user_id,
                "memberRole": "OWNER",
                "claimed": account.claimed,
                "claimUrl": None if account.claimed else CLAIM_URL,
            },
        }

    @staticmethod
    def capabilities(account: FakeAccount) -> dict[str, Any]:
        """GET /job-drafts/capabilities: the account's feature flags."""
        return {
            "capabilities": {"messagingWrites": account.messaging_writes, "jobDrafts": True},
            "enabled": True,
        }

    def _store(self, conv: FakeConversation, sender: str, content: str) -> dict[str, Any]:
        """Append a message to `conv` and return the stored dict."""
        self._msg_counter += 1
        ts = _iso(self._now())
        message = {
            "id": f"msg_{self._msg_counter:06d}",
            "createdAt": ts,
            "updatedAt": ts,
            "conversationId": conv.id,
            "jobId": conv.job_id,
            "senderUserId": sender,
            "isFromViewer": True,
            "content": content,
            "messageType": None,
            "system": False,
            "hasUnreadFlag": False,
            "attachmentCount": 0,
            "hasAudio": False,
            "editedAt": None,
            "reactionCount": 0,
        }
        conv.messages.append(message)
        self._seq += 1
        conv.seq = self._seq
        conv.updated_at = ts
        return message
