"""zod-style validation, as the real server answers a bad request.

Issues are plain dicts in zod's shape (``code``, ``path``, ``message`` and the code's
extra keys); string lengths are JavaScript's (UTF-16 code units). Functions return or
append issues and never raise: the caller decides the answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "MAX_CONTENT_UNITS",
    "enum_param",
    "int_param",
    "issue",
    "js_type",
    "string_issues",
    "type_issue",
    "utf16_len",
]

MAX_CONTENT_UNITS: Final = 10_000
_JS_TYPES: Final = {
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def js_type(value: Any) -> str:
    """The name zod uses for a JSON value's type."""
    return _JS_TYPES.get(type(value), "unknown")


def utf16_len(text: str) -> int:
    """JavaScript string length: UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def issue(code: str, path: list[str | int], message: str, **extra: Any) -> dict[str, Any]:
    """A zod-shaped validation issue."""
    issue: dict[str, Any] = {"code": code, "path": path, "message": message}
    issue.update(extra)
    return issue


def type_issue(field: str, expected: str, value: Any, missing: bool) -> dict[str, Any]:
    """zod's invalid_type issue for a missing or wrongly typed field."""
    received = "undefined" if missing else js_type(value)
    message = "Required" if missing else f"Expected {expected}, received {received}"
    return issue("invalid_type", [field], message, expected=expected, received=received)


def string_issues(
    obj: Mapping[str, Any], field: str, minimum: int, maximum: int | None
) -> list[dict[str, Any]]:
    """Validate one required string field; lengths in UTF-16 code units."""
    if field not in obj:
        return [type_issue(field, "string", None, missing=True)]
    value = obj[field]
    if not isinstance(value, str):
        return [type_issue(field, "string", value, missing=False)]
    length = len(value) if minimum <= len(value) <= MAX_CONTENT_UNITS // 2 else utf16_len(value)
    if length < minimum:
        return [
            issue(
                "too_small",
                [field],
                f"String must contain at least {minimum} character(s)",
                minimum=minimum,
                type="string",
                inclusive=True,
                exact=False,
            )
        ]
    if maximum is not None and length > maximum:
        return [
            issue(
                "too_big",
                [field],
                f"String must contain at most {maximum} character(s)",
                maximum=maximum,
                type="string",
                inclusive=True,
                exact=False,
            )
        ]
    return []


def int_param(
    query: Mapping[str, str],
    name: str,
    default: int,
    minimum: int,
    maximum: int,
    issues: list[dict[str, Any]],
) -> int:
    """A coerced integer query parameter (zod ``z.coerce.number().int().min().max()``)."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw) if raw.strip() else math.nan
    except ValueError:
        value = math.nan
    problem = _int_problem(name, value, minimum, maximum)
    if problem is not None:
        issues.append(problem)
        return default
    return int(value)


def _int_problem(name: str, value: float, minimum: int, maximum: int) -> dict[str, Any] | None:
    """The zod issue of a coerced value that is no integer within bounds, else None."""
    if math.isnan(value):
        return issue(
            "invalid_type",
            [name],
            "Expected number, received nan",
            expected="number",
            received="nan",
        )
    if not value.is_integer():
        return issue(
            "invalid_type",
            [name],
            "Expected integer, received float",
            expected="integer",
            received="float",
        )
    if value < minimum:
        return issue(
            "too_small",
            [name],
            f"Number must be greater than or equal to {minimum}",
            minimum=minimum,
            type="number",
            inclusive=True,
            exact=False,
        )
    if value > maximum:
        return issue(
            "too_big",
            [name],
            f"Number must be less than or equal to {maximum}",
            maximum=maximum,
            type="number",
            inclusive=True,
            exact=False,
        )
    return None


def enum_param(
    query: Mapping[str, str], name: str, options: tuple[str, ...], issues: list[dict[str, Any]]
) -> str | None:
    """An enum query parameter, or None when absent."""
    raw = query.get(name)
    if raw is None or raw in options:
        return raw
    expected = " | ".join(f"'{o}'" for o in options)
    issues.append(
        issue(
            "invalid_enum_value",
            [name],
            f"Invalid enum value. Expected {expected}, received '{raw}'",
            options=list(options),
            received=raw,
        )
    )
    return None
