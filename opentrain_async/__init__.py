"""opentrain_async: the asyncio SDK for the OpenTrain public API's messaging surface.

Send with ``OpenTrainClient.send_message`` (or the one-shot ``send_message``); every
error is an ``OpenTrainError``; the fake server for tests is ``opentrain_async.testing``.
"""

from . import _early_signals  # noqa: F401  (first: the CLI's Ctrl-C while it starts)
from ._bulk import OUTCOME_KINDS, BulkReport, BulkSend, OutcomeKind, SendItem, SendOutcome
from ._client import ClientStats, OpenTrainClient, RawResponseClient, send_message
from ._config import Settings, resolve_settings
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BlockedByEarlierFailureError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    JobBusyError,
    JobJournalError,
    NotAttemptedError,
    NotFoundError,
    OpenTrainError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    UnexpectedResponseError,
    WebhookVerificationError,
)
from ._listen import (
    CursorStore,
    JSONFileCursorStore,
    Listener,
    ListenStart,
    MemoryCursorStore,
)
from ._logs import configure_logging_from_env
from ._models import Message, OutgoingMessage
from ._options import PacingOptions, RetryOptions, TimeOptions
from ._pacing import (
    InMemoryPacingBackend,
    Pacer,
    PacingBackend,
    PacingFeedback,
    PacingState,
    PacingTuning,
    Reservation,
)
from ._pacing.redis_backend import RedisPacingBackend, RedisPacingOptions
from ._pagination import AsyncPaginator
from ._raw import RawResponse
from ._read import ConversationFilter, Direction
from ._read_models import (
    EVENT_TYPES,
    Account,
    Actor,
    Capabilities,
    Conversation,
    ConversationPage,
    Event,
    EventPage,
    LastMessage,
    MessagePage,
    Preflight,
    PreflightProblem,
    ProposalConversation,
    TokenInfo,
    WhoAmI,
)
from ._retry import RetryEvent, RetryPolicy
from ._validation import MAX_CONTENT_LENGTH, utf16_length
from ._version import __version__
from ._webhook_dedupe import DedupeStore, MemoryDedupeStore, RedisDedupeStore
from ._webhooks import (
    WebhookHandler,
    parse_webhook_event,
    sign_webhook_payload,
    verify_webhook_signature,
    webhook_handler,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_CONTENT_LENGTH",
    "OUTCOME_KINDS",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "Actor",
    "AsyncPaginator",
    "AuthenticationError",
    "BadRequestError",
    "BlockedByEarlierFailureError",
    "BulkReport",
    "BulkSend",
    "Capabilities",
    "ClientStats",
    "ConfigurationError",
    "ConflictError",
    "Conversation",
    "ConversationFilter",
    "ConversationPage",
    "CursorStore",
    "DedupeStore",
    "DeliveryUnknownError",
    "Direction",
    "Event",
    "EventPage",
    "InMemoryPacingBackend",
    "InternalServerError",
    "InvalidRequestError",
    "JSONFileCursorStore",
    "JobBusyError",
    "JobJournalError",
    "LastMessage",
    "ListenStart",
    "Listener",
    "MemoryCursorStore",
    "MemoryDedupeStore",
    "Message",
    "MessagePage",
    "NotAttemptedError",
    "NotFoundError",
    "OpenTrainClient",
    "OpenTrainError",
    "OutcomeKind",
    "OutgoingMessage",
    "Pacer",
    "PacingBackend",
    "PacingFeedback",
    "PacingOptions",
    "PacingState",
    "PacingTuning",
    "PermissionDeniedError",
    "Preflight",
    "PreflightProblem",
    "ProposalConversation",
    "RateLimitError",
    "RawResponse",
    "RawResponseClient",
    "RedirectError",
    "RedisDedupeStore",
    "RedisPacingBackend",
    "RedisPacingOptions",
    "Reservation",
    "RetryEvent",
    "RetryOptions",
    "RetryPolicy",
    "SendItem",
    "SendOutcome",
    "Settings",
    "TimeOptions",
    "TokenInfo",
    "UnexpectedResponseError",
    "WebhookHandler",
    "WebhookVerificationError",
    "WhoAmI",
    "__version__",
    "configure_logging_from_env",
    "parse_webhook_event",
    "resolve_settings",
    "send_message",
    "sign_webhook_payload",
    "utf16_length",
    "verify_webhook_signature",
    "webhook_handler",
]

configure_logging_from_env()
