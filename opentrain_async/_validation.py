"""Local validation of what the server would reject, so bad input never costs a request.

The one home of the SDK's input checks: each raises ``InvalidRequestError`` naming the
field, the rule (``limit``) and what was given (``actual``).

The server validates with zod, i.e. JavaScript string lengths, which count UTF-16 code
units: an emoji outside the Basic Multilingual Plane counts as 2.  Text must also be
valid Unicode: a lone surrogate (what Python makes of undecodable bytes, e.g. in
``sys.argv``) cannot be encoded for the wire, and URL quoting would silently drop it.
"""

from __future__ import annotations

import inspect
import math
import numbers
from urllib.parse import quote

from ._errors import ConfigurationError, InvalidRequestError

__all__ = [
    "MAX_CONTENT_LENGTH",
    "check_callback",
    "check_flag",
    "check_option",
    "check_sleep",
    "path_segment",
    "utf16_length",
    "validate_bool",
    "validate_choice",
    "validate_content",
    "validate_conversation_id",
    "validate_cursor",
    "validate_limit",
    "validate_number",
    "validate_text",
]

MAX_CONTENT_LENGTH = 10_000
_VALID_UNICODE = "valid Unicode text (no lone surrogates)"


def utf16_length(text: str) -> int:
    """Length of ``text`` as JavaScript counts it (UTF-16 code units)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _lone_surrogate(value: str, field: str, index: int) -> InvalidRequestError:
    code = f"U+{ord(value[index]):04X}"
    return InvalidRequestError(
        f"{field} is not valid Unicode text: a lone surrogate ({code}) at index {index}, "
        "typically from bytes that were not UTF-8",
        field=field,
        limit=_VALID_UNICODE,
        actual=code,
    )


def validate_text(value: str, field: str) -> str:
    """Return ``value`` if it holds no lone surrogate, else raise naming ``field``."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _lone_surrogate(value, field, exc.start) from None
    return value


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
    return validate_text(conversation_id, field)


def path_segment(value: object, field: str) -> str:
    """An id validated and quoted as one URL path segment (``/`` included).

    ``.`` and ``..`` are refused: quoting leaves dots alone, and URL normalisation
    would turn ``/proposals/../conversation`` into another endpoint.
    """
    text = validate_conversation_id(value, field)
    if text in (".", ".."):
        raise InvalidRequestError(
            f"{field} must not be {text!r} (a relative path segment)",
            field=field,
            limit="an id, not '.' or '..'",
            actual=text,
        )
    return quote(text, safe="")


def validate_content(content: object, field: str = "content") -> str:
    """Return the content if it is 1-10,000 UTF-16 code units of valid Unicode, else raise."""
    if not isinstance(content, str):
        raise InvalidRequestError(
            f"{field} must be a string, got {type(content).__name__}",
            field=field,
            limit=f"1-{MAX_CONTENT_LENGTH} UTF-16 code units",
            actual=type(content).__name__,
        )
    if content.isascii():
        length = len(content)
    else:
        # Strict UTF-16 counts code units and refuses lone surrogates in one pass.
        try:
            length = len(content.encode("utf-16-le")) // 2
        except UnicodeEncodeError as exc:
            raise _lone_surrogate(content, field, exc.start) from None
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
    return validate_text(cursor, "cursor")


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


def validate_number(value: object, field: str, *, minimum: float, strict: bool = False) -> float:
    """A real number (not a bool, not NaN) >= ``minimum`` (> with ``strict``), as a float."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value > minimum if strict else value >= minimum  # type: ignore[operator]
    if not ok:
        rule = f"{'>' if strict else '>='} {minimum:g}"
        raise InvalidRequestError(
            f"{field} must be a number {rule}, got {value!r}", field=field, limit=rule, actual=value
        )
    return float(value)  # type: ignore[arg-type]


MIN_RATE_LIMIT = 1e-6
"""The slowest ``rate_limit=`` taken: one message per 11.6 days.  Anything slower is a
mistake (a unit slip, ``1e-300``) that would hold every send after the first for ever,
silently."""


def check_rate_limit(value: object) -> float:
    """``rate_limit=`` checked (the client's and the ``Pacer``'s): a number of messages per
    second, at least ``MIN_RATE_LIMIT``, else ``ConfigurationError`` naming it."""
    return check_option(value, "rate_limit", minimum=MIN_RATE_LIMIT, unit=" per second")


def check_option(
    value: object,
    name: str,
    *,
    minimum: float,
    strict: bool = False,
    integer: bool = False,
    unit: str = "",
    infinite: bool = False,
) -> float:
    """Check a client or bulk option (``max_concurrency=``, ``timeout=``...): a finite number
    (an ``int`` with ``integer``; never a bool, a string or NaN) >= ``minimum`` (> with
    ``strict``), else ``ConfigurationError`` naming it.  Settings often come from
    environment variables, i.e. strings, and Python's own ``TypeError`` for ``"8" < 1``
    names neither the option nor the rule.  ``infinite`` also takes ``math.inf`` (for
    "no limit": ``max_retry_after``, ``grace``).  Returns it as a float."""
    kind = "an integer" if integer else "a number"
    number = math.nan
    rule = f"{kind} {'>' if strict else '>='} {minimum:g}{unit}"
    # The numbers ABCs, not int/float: numpy's scalars (settings read with pandas) count.
    kinds = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok:
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int of hundreds of digits
            ok = False
        else:
            finite = math.isfinite(number) or (infinite and number == math.inf)
            ok = finite and (number > minimum if strict else number >= minimum)
    if not ok:
        raise ConfigurationError(f"{name} must be {rule}, got {repr(value)[:40]}")
    return number


def check_flag(value: object, name: str) -> None:
    """A per-call switch (``reconcile=``) is a bool, as the client's own: ``"no"`` is
    truthy, so ``reconcile="false"`` silently read back and resent."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def check_callback(value: object, name: str) -> None:
    """A hook (``on_outcome=``, ``before_send=``) is callable or None, checked before the
    first input is pulled: a string there failed only at the first outcome, after a send."""
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be a function or None, got {type(value).__name__}")


def check_sleep(sleep: object) -> None:
    """``sleep=`` is awaited, so it must be async: ``time.sleep`` (a builtin, blocking)
    froze the event loop at the first wait, then raised TypeError (``await None``)."""
    if inspect.isbuiltin(sleep) or not callable(sleep):
        name = getattr(sleep, "__qualname__", None) or type(sleep).__name__
        where = getattr(sleep, "__module__", None)
        raise ConfigurationError(
            "sleep= must be an async function such as asyncio.sleep (or FakeTime.sleep), "
            f"got {where + '.' if where else ''}{name}"
        )
