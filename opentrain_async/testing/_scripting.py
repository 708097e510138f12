"""The fake server's one scripting primitive: "answer the next n requests to this route so".

A ``Rule`` names a route (``"POST /messages"``, any path under the API prefix, known to
the server or not), the stage it fires at (before the request is processed, or, for
POST /messages, after the message was committed), how often (``times``, or every time
with a ``probability``) and the ``Answer``: a status with a JSON body, a raw body or the
error envelope; a dropped connection; a stall. ``throttle_next``, ``fail_next`` and
``inject_fault`` are sugar over it (``ScriptingMixin``, the server's scripting methods).
Plain Python: no aiohttp here.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

import attrs

from ._models import Fault

__all__ = [
    "BAD_GATEWAY_HTML",
    "NO_JSON",
    "Answer",
    "Rule",
    "Script",
    "ScriptingMixin",
    "fault_rule",
    "parse_route",
]

BAD_GATEWAY_HTML: Final = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
NO_JSON: Final[Any] = object()
"""The default of ``json``: no JSON payload given."""


def parse_route(route: str) -> tuple[str, str]:
    """``"POST /messages"`` -> ``("POST", "/messages")``; the path is under the API prefix."""
    method, _, path = route.strip().partition(" ")
    method, path = method.upper(), path.strip()
    if method not in _METHODS or not path.startswith("/"):
        raise ValueError(f"route must look like 'POST /messages', got {route!r}")
    return method, path


@attrs.frozen
class Answer:
    """What a scripted request gets.

    ``status=None`` means the real answer (after ``delay``); otherwise ``json`` (any JSON
    value), else ``body`` (raw text or bytes with ``content_type``), else the error
    envelope with ``error`` (default: the status phrase) and ``details``. ``drop`` closes
    the connection without answering. ``delay`` stalls first (woken early, and the
    connection dropped, when the server closes).
    """

    status: int | None = None
    json: Any = NO_JSON
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    error: str | None = None
    details: Mapping[str, Any] | None = None
    drop: bool = False
    delay: float = 0.0

    @property
    def has_json(self) -> bool:
        """Whether a JSON payload was given (``None`` is a valid one)."""
        return self.json is not NO_JSON


@attrs.define
class Rule:
    """One scripted answer for a route, and how often it still fires."""

    method: str
    path: str
    answer: Answer
    remaining: int | None = 1
    """Requests still to answer; None: every matching request (subject to probability)."""
    probability: float | None = None
    after_commit: bool = False
    counts_as: str = "faults"
    """The stats counter a firing bumps: ``rate_limited`` for 429s, else ``faults``."""


def fault_rule(
    fault: Fault, remaining: int | None, probability: float | None, delay: float
) -> Rule:
    """The rule a transport fault on POST /messages stands for."""
    after = fault.after_commit
    if fault in (Fault.RESET_BEFORE_COMMIT, Fault.RESET_AFTER_COMMIT):
        answer = Answer(drop=True)
    elif fault is Fault.TIMEOUT_AFTER_COMMIT:
        answer = Answer(delay=delay)
    else:
        answer = Answer(status=502, body=BAD_GATEWAY_HTML.encode(), content_type="text/html")
    return Rule("POST", "/messages", answer, remaining, probability, after_commit=after)


class Script:
    """The ordered rules of one server; the first that matches and fires answers."""

    def __init__(self, rng: random.Random) -> None:
        self._rules: list[Rule] = []
        self._random = rng

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def add(self, rule: Rule) -> None:
        """Append a rule (earlier rules win)."""
        if rule.probability is not None and not 0.0 <= rule.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if rule.after_commit and (rule.method, rule.path) != ("POST", "/messages"):
            raise ValueError("after_commit applies to 'POST /messages' only")
        if rule.answer.status is not None and not 100 <= rule.answer.status <= 599:
            raise ValueError(f"status must be an HTTP status, got {rule.answer.status}")
        if rule.remaining is not None and rule.remaining < 1:
            return
        self._rules.append(rule)

    def clear(self) -> None:
        """Forget every rule."""
        self._rules.clear()

    def take(self, method: str, path: str, *, after_commit: bool) -> Rule | None:
        """The rule that fires for this request at this stage, its count consumed."""
        for rule in self._rules:
            if rule.after_commit is not after_commit or rule.method != method:
                continue
            if rule.path != path:
                continue
            if rule.probability is not None and self._random.random() >= rule.probability:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
            return rule
        return None


def _phrase(status: int) -> str:
    """The reason phrase of a status ("Error" for one HTTP does not name)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ScriptingMixin:
    """``FakeOpenTrain``'s scripting methods, over its ``Script``."""

    _script: Script

    def script(
        self,
        route: str,
        *,
        status: int | None = None,
        json: Any = NO_JSON,
        body: str | bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        error: str | None = None,
        details: Mapping[str, Any] | None = None,
        drop: bool = False,
        delay: float = 0.0,
        times: int | None = 1,
        probability: float | None = None,
        after_commit: bool = False,
    ) -> None:
        """Answer the next `times` requests to `route` (``"GET /updates"``) this way.

        The answer is `status` (200 if only a body is given) with the JSON value `json`,
        else the raw `body`, else the error envelope (`error`, `details`); `drop` closes
        the connection unanswered; `delay` stalls first; with neither a status nor a body
        the real answer follows the stall.  `content_type` (default application/json)
        may instead be given as a Content-Type in `headers`, not both.
        `times=None` scripts every matching request (each with `probability`, if given).
        `after_commit=True` (POST /messages only) stores the message first, as when a
        proxy fails after the server committed. Rules apply in the order scripted, before
        authentication, to any path under the API prefix, served or not.
        """
        method, path = parse_route(route)
        named = [v for k, v in (headers or {}).items() if k.lower() == "content-type"]
        if named and (content_type is not None or len(named) > 1):
            raise ValueError(
                "give the Content-Type once: content_type= or a Content-Type in headers="
            )
        raw = body.encode() if isinstance(body, str) else body
        if status is None and (json is not NO_JSON or raw is not None):
            status = 200
        answer = Answer(
            status=status,
            json=json,
            body=raw,
            content_type="application/json" if content_type is None else content_type,
            headers=dict(headers or {}),
            error=error,
            details=None if details is None else dict(details),
            drop=drop,
            delay=delay,
        )
        counts_as = "rate_limited" if status == 429 else "faults"
        self._script.add(Rule(method, path, answer, times, probability, after_commit, counts_as))

    def throttle_next(
        self,
        n: int,
        *,
        retry_after: float = 1.0,
        in_body: bool = True,
        header: str | None = None,
    ) -> None:
        """The next `n` sends answer 429 (hint in body and/or a Retry-After header)."""
        details: dict[str, Any] = {"reason": "rate_limited"}
        if in_body:
            details["retryAfterSeconds"] = retry_after
        headers = {"Retry-After": header} if header is not None else {}
        self.script(
            "POST /messages",
            status=429,
            error="Rate limit exceeded",
            details=details,
            headers=headers,
            times=n,
        )

    def fail_next(
        self,
        n: int,
        *,
        status: int = 500,
        body: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        """The next `n` sends answer `status` before committing (raw `body`, or the envelope)."""
        self.script(
            "POST /messages",
            status=status,
            body=body,
            content_type=content_type,
            error=_phrase(status),
            times=n,
        )

    def inject_fault(
        self,
        fault: Fault,
        count: int | None = None,
        probability: float | None = None,
        *,
        delay: float = 60.0,
    ) -> None:
        """Inject a transport fault on sends: the next `count`, each with `probability`, or all."""
        self._script.add(fault_rule(Fault(fault), count, probability, delay))

    def clear_faults(self) -> None:
        """Remove every scripted answer: faults, fail_next/throttle_next and script() rules."""
        self._script.clear()
