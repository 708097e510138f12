"""The exception tree. Every error the SDK raises is an ``OpenTrainError``::

    OpenTrainError          .message .status .code .reason .request_id .details (None if n/a)
     ├── InvalidRequestError (also ValueError)     bad input, caught before any request
     ├── ConfigurationError (also ValueError)      no token, plain-http base URL, ...
     ├── APIError                                  a request failed (as in openai-python)
     │    ├── APIStatusError                       the server answered non-2xx: .status_code
     │    │    ├── BadRequestError          400  .issues
     │    │    ├── AuthenticationError      401
     │    │    ├── PermissionDeniedError    403  .claim_url .policy
     │    │    ├── NotFoundError            404
     │    │    ├── ConflictError            409
     │    │    ├── RateLimitError           429  .retry_after
     │    │    ├── InternalServerError      5xx  (also non-JSON proxy pages)
     │    │    └── RedirectError            3xx  .location (never followed)
     │    ├── UnexpectedResponseError              2xx whose body is not what the API documents
     │    └── APIConnectionError                   no answer: .reached_server
     │         ├── APITimeoutError
     │         └── DeliveryUnknownError            a send may or may not have been delivered
     ├── NotAttemptedError                         bulk: never sent, the job was stopped
     │    └── BlockedByEarlierFailureError         an earlier input of its conversation failed
     ├── JobJournalError                           send_all(journal=): the journal is unusable
     │    └── JobBusyError                         another run holds the job's journal
     └── WebhookVerificationError                  a webhook signature did not verify

``except APIError`` catches every failed request, network failures included, and
``except APIConnectionError`` also catches sends whose outcome is unknown.  Every error
has the six attributes of the API's error envelope; they are None (``details`` empty)
where they do not apply, so ``except OpenTrainError as e: log(e.status)`` never fails.
Responses are parsed once, when the exception is built, so retry code reads attributes
(``.retry_after``), never headers.  No exception ever carries the token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ._http_date import http_date_hint
from ._json import json_loads

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BlockedByEarlierFailureError",
    "ConfigurationError",
    "ConflictError",
    "DeliveryUnknownError",
    "InternalServerError",
    "InvalidRequestError",
    "JobBusyError",
    "JobJournalError",
    "NotAttemptedError",
    "NotFoundError",
    "OpenTrainError",
    "PermissionDeniedError",
    "RateLimitError",
    "RedirectError",
    "UnexpectedResponseError",
    "WebhookVerificationError",
    "error_from_response",
    "parse_retry_after",
]

_NO_DETAILS: Mapping[str, Any] = MappingProxyType({})


class OpenTrainError(Exception):
    """Base class of every error raised by opentrain_async.

    ``message`` is the human-readable text; ``status``, ``code``, ``reason``,
    ``request_id`` and ``details`` are the API envelope's fields, None (``details``
    empty) on errors that did not come from an answer of the server.
    """

    status: int | None = None
    code: str | None = None
    reason: str | None = None
    request_id: str | None = None
    details: Mapping[str, Any] = _NO_DETAILS
    body: object | None = None
    """The server's error answer (as openai-python's ``body``): its decoded JSON, or its
    text when it is not JSON (the first 8 KiB of a longer one); None when no answer came
    with this error."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling, and errors cross
        # processes (arq, multiprocessing, celery results) and get copied: rebuild from the
        # attributes instead of calling __init__ again.  __cause__ is not kept (as pickle
        # never keeps it); what it told (status, request id) is copied onto the error.
        state = dict(self.__dict__)
        if isinstance(state.get("details"), MappingProxyType):
            state["details"] = dict(state["details"])
        return (_rebuild, (type(self), self.args, state))


def _rebuild(cls: type[OpenTrainError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Unpickle an ``OpenTrainError`` (see ``OpenTrainError.__reduce__``)."""
    error = Exception.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidRequestError(OpenTrainError, ValueError):
    """Input the server would reject, caught locally before any request was made.

    ``field`` names the offending field, ``limit`` the rule, ``actual`` what was given.
    """

    def __init__(
        self, message: str, *, field: str, limit: str | None = None, actual: object = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.limit = limit
        self.actual = actual


class ConfigurationError(OpenTrainError, ValueError):
    """The client cannot be set up: no token found, an unsafe base URL, and so on."""


class APIError(OpenTrainError):
    """A request failed: the server answered with an error, or did not answer at all.

    ``method`` and ``path`` name the request when known.  ``str(error)`` adds the status,
    code, reason, request and request id to ``message``.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.details = details or _NO_DETAILS
        reason = self.details.get("reason")
        self.reason = reason if isinstance(reason, str) else None
        self.method = method
        self.path = path
        self.args = (self._describe(),)

    def _describe(self) -> str:
        parts = [str(self.status)] if self.status is not None else []
        if self.code:
            parts.append(self.code)
        text = " ".join(parts) + ": " + self.message if parts else self.message
        if self.reason:
            text += f" (reason: {self.reason})"
        if self.method and self.path:
            text += f" [{self.method} {self.path}]"
        if self.request_id:
            text += f" request_id={self.request_id}"
        return text


class APIStatusError(APIError):
    """The server answered with a non-2xx status: ``status_code`` (also ``status``)."""

    status: int

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            code=code,
            request_id=request_id,
            details=details,
            method=method,
            path=path,
        )

    @property
    def status_code(self) -> int:
        """The HTTP status of the answer (openai-python's name for ``status``)."""
        return self.status


class BadRequestError(APIStatusError):
    """400: the server rejected the request's fields; ``issues`` holds its validation issues."""

    @property
    def issues(self) -> list[Any]:
        """The zod validation issues from ``details.issues`` (empty when absent)."""
        issues = self.details.get("issues")
        return list(issues) if isinstance(issues, list) else []


class AuthenticationError(APIStatusError):
    """401: the token is missing, malformed, revoked or unknown."""


class PermissionDeniedError(APIStatusError):
    """403: scope, feature, account claim, participation or content policy forbids this."""

    @property
    def claim_url(self) -> str | None:
        """Where to claim the account, when ``reason == "account_claim_required"``."""
        value = self.details.get("claimUrl")
        return value if isinstance(value, str) else None

    @property
    def policy(self) -> str | None:
        """The content policy that blocked the message (``message_policy_blocked``)."""
        value = self.details.get("policy")
        return value if isinstance(value, str) else None


class NotFoundError(APIStatusError):
    """404: no such conversation (or resource)."""


class ConflictError(APIStatusError):
    """409: the send is blocked by the conversation's state; ``reason`` says which."""


class RateLimitError(APIStatusError):
    """429: the request was rejected (never committed); ``retry_after`` is the server's hint."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class InternalServerError(APIStatusError):
    """5xx, including HTML pages from proxies in front of the API."""


class RedirectError(APIStatusError):
    """3xx: the server redirected; an API client never follows (``location`` says where).

    Following would re-post content to another origin, or turn a send into a GET whose
    answer could look like success.  The request was not repeated anywhere.
    """

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any) -> None:
        self.location = location
        super().__init__(message, **kwargs)


class UnexpectedResponseError(APIError):
    """A success status (in ``status``) whose body does not match what the API documents."""


class APIConnectionError(APIError):
    """No HTTP answer arrived: DNS failure, refused or dropped connection.

    ``reached_server`` is False when the request certainly never reached the server
    (so a retry cannot duplicate it) and None when that is unknown.
    """

    def __init__(
        self,
        message: str,
        *,
        reached_server: bool | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.reached_server = reached_server


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class DeliveryUnknownError(APIConnectionError):
    """A send failed in a way that leaves its outcome unknown.

    The request may have been committed by the server before the connection broke,
    the timeout fired, or a proxy answered 5xx.  Resending blindly could post the
    message twice, so the SDK does not.  ``__cause__`` is the failure of the send
    (``cause=`` sets it); its ``status`` and ``request_id`` are copied here, and its type
    and message too (``cause_type``, ``cause_message``), so they survive pickling, which
    drops ``__cause__``.
    """

    cause_type: str | None = None
    """The class name of the failure behind it (``"APITimeoutError"``), kept across pickling."""
    cause_message: str | None = None
    """That failure's message, kept across pickling (``__cause__`` is not)."""

    def __init__(
        self,
        message: str,
        *,
        cause: BaseException | None = None,
        conversation_id: str | None = None,
        started_at: float | None = None,
    ) -> None:
        super().__init__(message)
        if isinstance(cause, OpenTrainError):
            self.status = cause.status
            self.request_id = cause.request_id
        if cause is not None:
            self.cause_type = type(cause).__name__
            self.cause_message = (
                cause.message if isinstance(cause, OpenTrainError) else str(cause)
            ) or None
        self.__cause__ = cause
        self.conversation_id = conversation_id
        self.started_at = started_at


class NotAttemptedError(OpenTrainError):
    """Bulk: this input was never sent, because an earlier send showed that every send
    of this token would fail (401, or a 403 about the account or token such as a
    missing scope or an unclaimed account; ``__cause__`` is that error), or because the
    loop over ``send_many`` was left before its send started (no ``__cause__``)."""

    def __init__(self, message: str, *, cause: OpenTrainError | None = None) -> None:
        super().__init__(message)
        self.__cause__ = cause


class BlockedByEarlierFailureError(NotAttemptedError):
    """Bulk, in order (the default): never sent, because an earlier input of the same
    conversation failed for good; sending it would let a later part overtake the one
    that failed.  ``waited_on`` is the failed input's index (``waited_on_key`` its key),
    ``__cause__`` its error.  ``on_failure="continue"`` sends such inputs instead."""

    def __init__(
        self,
        message: str,
        *,
        waited_on: int | None,
        waited_on_key: str | None = None,
        cause: OpenTrainError | None = None,
    ) -> None:
        super().__init__(message, cause=cause)
        self.waited_on = waited_on
        self.waited_on_key = waited_on_key


class JobJournalError(OpenTrainError):
    """``send_all``/``send_many`` with ``journal=``: the journal cannot be used (not a
    journal of ours, corrupt, unreachable, lost mid-run).  Nothing was sent unless the
    message says otherwise; rerunning resumes from what the journal holds."""


class JobBusyError(JobJournalError):
    """Another run holds this job's journal right now (a second concurrent run of the
    same task): nothing was sent by this one."""


class WebhookVerificationError(OpenTrainError):
    """A webhook delivery's signature is missing, malformed, stale or wrong.

    ``reason`` is one of ``missing``, ``malformed``, ``stale``, ``mismatch`` (the
    signature) or ``invalid_payload`` (a verified body that is not an event record).
    """

    def __init__(self, message: str, *, reason: str = "mismatch") -> None:
        super().__init__(message)
        self.reason = reason


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def parse_retry_after(value: object) -> float | None:
    """Read a retry hint given as seconds (int, float or numeric string); else None.

    A ``Retry-After`` header's HTTP date is read by ``http_date_hint``.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer of hundreds of digits: no usable hint
            return None
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    return seconds


def error_from_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str | None = None,
    path: str | None = None,
) -> APIStatusError:
    """Build the typed error for a non-2xx answer, tolerating non-JSON bodies."""
    payload: Any = None
    try:
        payload = json_loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    message: str | None = None
    code: str | None = None
    request_id: str | None = headers.get("X-Request-Id")
    details: Mapping[str, Any] | None = None
    if isinstance(payload, dict):
        if isinstance(payload.get("error"), str):
            message = payload["error"]
        if isinstance(payload.get("code"), str):
            code = payload["code"]
        if isinstance(payload.get("requestId"), str):
            request_id = payload["requestId"]
        if isinstance(payload.get("details"), dict):
            details = payload["details"]
    if message is None:
        snippet = body[:80].decode("utf-8", "replace").strip() if body else ""
        message = f"HTTP {status} without the API's JSON envelope" + (
            f": {snippet!r}" if snippet else ""
        )
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": request_id,
        "details": details,
        "method": method,
        "path": path,
    }
    cls: type[APIStatusError] | None
    if status == 429:
        hint = parse_retry_after((details or {}).get("retryAfterSeconds"))
        if hint is None:
            hint = parse_retry_after(headers.get("Retry-After"))
        if hint is None:
            hint = http_date_hint(headers)  # a CDN's or proxy's date
        error: APIStatusError = RateLimitError(message, retry_after=hint, **kwargs)
        error.body = _body(payload, body)
        return error
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    error = cls(message, **kwargs)
    error.body = _body(payload, body)
    return error


BODY_KEPT = 8192
"""Bytes of an error answer kept as ``body``: errors are kept (a batch's failures, a
journal, a pickled job result), and a proxy's error page may be megabytes."""


def _body(payload: object, raw: bytes) -> object | None:
    """``body`` of an error answer: its JSON, else its text (None when empty); an answer
    over ``BODY_KEPT`` bytes is kept as the text of its start, ending in "..."."""
    if len(raw) > BODY_KEPT:
        return raw[:BODY_KEPT].decode("utf-8", "replace") + "..."
    if payload is not None or not raw:
        return payload
    return raw.decode("utf-8", "replace")
