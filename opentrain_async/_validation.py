"""Local validation of what the server would reject, so bad input never costs a request.

The one home of the SDK's input checks: each raises ``InvalidRequestError`` naming the
field, the rule (``limit``) and what was given (``actual``).

The server validates with zod, i.e. JavaScript string lengths, which count UTF-16 code
units: an emoji outside the Basic Multilingual Plane counts as 2.
"""

from __future__ import annotations

from ._errors import InvalidRequestError

__all__ = [
    "MAX_CONTENT_LENGTH",
    "utf16_length",
    "validate_bool",
    "validate_choice",
    "validate_content",
    "validate_conversation_id",
    "validate_cursor",
    "validate_limit",
]

MAX_CONTENT_LENGTH = 10_000


def utf16_length(text: str) -> int:
    """Length of ``text`` as JavaScript counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def validate_conversation_id(conversation_id: object, field: str = "conversationId") -> str:
    """Return the id if it is a non-empty string, else raise ``InvalidRequestError``."""
    if not isinstance(conversation_id, str):
        raise InvalidRequestError(
            f"{field} must be a string, got {type(conversation_id).__name__}",
            field=field,
            limit="non-empty string",
            actual=type(conversation_id).__name__,
        )
    if not conversation_id.strip():
        raise InvalidRequestError(
            f"{field} must be a non-empty string", field=field, limit="non-empty string", actual=""
        )
    return conversation_id


def validate_content(content: object, field: str = "content") -> str:
    """Return the content if it is 1-10,000 UTF-16 code units long, else raise."""
    if not isinstance(content, str):
        raise InvalidRequestError(
            f"{field} must be a string, got {type(content).__name__}",
            field=field,
            limit=f"1-{MAX_CONTENT_LENGTH} UTF-16 code units",
            actual=type(content).__name__,
        )
    length = utf16_length(content)
    if length < 1 or length > MAX_CONTENT_LENGTH:
        raise InvalidRequestError(
            f"{field} must be 1-{MAX_CONTENT_LENGTH:,} characters (UTF-16 code units, as the "
            f"server counts them); got {length:,}",
            field=field,
            limit=f"1-{MAX_CONTENT_LENGTH} UTF-16 code units",
            actual=length,
        )
    return content


def validate_limit(limit: object, maximum: int) -> int:
    """A page size: an integer from 1 to ``maximum`` (not a bool)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidRequestError(
            f"limit must be an integer from 1 to {maximum}, got {limit!r}",
            field="limit",
            limit=f"1-{maximum}",
            actual=limit,
        )
    return limit


def validate_choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``, exactly."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidRequestError(
            f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}",
            field=field,
            limit=" | ".join(choices),
            actual=value,
        )
    return value


def validate_cursor(cursor: object) -> str | None:
    """None, or a non-blank string (a ``next_cursor`` handed back)."""
    if cursor is None:
        return None
    if not isinstance(cursor, str) or not cursor.strip():
        raise InvalidRequestError(
            f"cursor must be None or a non-empty string (a previous next_cursor), got {cursor!r}",
            field="cursor",
            limit="None or non-empty string",
            actual=cursor,
        )
    return cursor


def validate_bool(value: object, field: str) -> bool:
    """True or False, not a truthy stand-in."""
    if not isinstance(value, bool):
        raise InvalidRequestError(
            f"{field} must be True or False, got {value!r}",
            field=field,
            limit="bool",
            actual=value,
        )
    return value
