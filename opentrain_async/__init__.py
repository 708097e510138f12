"""opentrain_async: the asyncio SDK for the OpenTrain public API's messaging surface.

Send with ``OpenTrainClient.send_message`` (or the one-shot ``send_message``); every
error is an ``OpenTrainError``; the fake server for tests is ``opentrain_async.testing``.
"""

from ._bulk import BulkReport, BulkSend, SendItem, SendOutcome
from ._client import ClientStats, OpenTrainClient, send_message
from ._config import Settings, resolve_settings
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DeliveryUnknownError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    OpenTrainError,
    PermissionDeniedError,
    RateLimitError,
    UnexpectedResponseError,
    WebhookVerificationError,
)
from ._models import Message, OutgoingMessage
from ._pacing import InMemoryPacingStore, Pacer, PacingState, PacingStore
from ._retry import RetryEvent, RetryPolicy
from ._validation import MAX_CONTENT_LENGTH, utf16_length
from ._version import __version__

__all__ = [
    "MAX_CONTENT_LENGTH",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkReport",
    "BulkSend",
    "ClientStats",
    "ConfigurationError",
    "ConflictError",
    "DeliveryUnknownError",
    "InMemoryPacingStore",
    "InternalServerError",
    "InvalidRequestError",
    "Message",
    "NotFoundError",
    "OpenTrainClient",
    "OpenTrainError",
    "OutgoingMessage",
    "Pacer",
    "PacingState",
    "PacingStore",
    "PermissionDeniedError",
    "RateLimitError",
    "RetryEvent",
    "RetryPolicy",
    "SendItem",
    "SendOutcome",
    "Settings",
    "UnexpectedResponseError",
    "WebhookVerificationError",
    "__version__",
    "resolve_settings",
    "send_message",
    "utf16_length",
]
