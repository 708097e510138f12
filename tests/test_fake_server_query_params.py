"""The fake server's integer query parameters answer as zod's coerced integers do:
each kind of bad value its own issue, the default kept, a good value taken."""

from __future__ import annotations

from typing import Any

import pytest

from opentrain_async.testing._zod import int_param


@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ("abc", "invalid_type", "Expected number, received nan"),
        ("  ", "invalid_type", "Expected number, received nan"),
        ("2.5", "invalid_type", "Expected integer, received float"),
        ("0", "too_small", "Number must be greater than or equal to 1"),
        ("101", "too_big", "Number must be less than or equal to 100"),
    ],
)
def test_a_bad_integer_is_one_issue_and_the_default(raw: str, code: str, message: str) -> None:
    issues: list[dict[str, Any]] = []
    assert int_param({"limit": raw}, "limit", 20, 1, 100, issues) == 20
    assert [(i["code"], i["message"], i["path"]) for i in issues] == [(code, message, ["limit"])]


@pytest.mark.parametrize(("raw", "value"), [("1", 1), ("100", 100), ("7.0", 7), (None, 20)])
def test_a_good_or_missing_integer_is_taken(raw: str | None, value: int) -> None:
    issues: list[dict[str, Any]] = []
    query = {} if raw is None else {"limit": raw}
    assert int_param(query, "limit", 20, 1, 100, issues) == value
    assert issues == []
