"""The client's option groups: ``PacingOptions``, ``RetryOptions``, ``TimeOptions``.

``OpenTrainClient`` takes its pacing, retry and time knobs either grouped
(``pacing=PacingOptions(rate_limit=500)``) or flat as before (``rate_limit=500``); the
flat keywords are typed by ``FlatOptions`` so that a type checker still catches a typo.
``merge_options`` folds both into one set of groups: a flat keyword fills its group's
field, and a field set both ways to different values is refused, naming both.  A field
left ``None`` means the client's default.  ``check_groups`` refuses knobs that
contradict each other.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import aiohttp
import attrs

from ._errors import ConfigurationError
from ._pacing import Pacer
from ._redis import redact_url
from ._retry import RetryPolicy
from ._time import Clock
from ._validation import check_rate_limit

if TYPE_CHECKING:
    from ._pacing import PacingBackend
    from ._retry import RetryEvent

__all__ = [
    "FlatOptions",
    "PacingOptions",
    "RetryOptions",
    "TimeOptions",
    "UnknownOptionError",
    "check_client_flags",
    "check_groups",
    "check_user_agent",
    "merge_options",
    "retry_policy_of",
]


def _redacted_url(url: str | None) -> str:
    return repr(None if url is None else redact_url(url))


@attrs.frozen
class PacingOptions:
    """How fast the client sends (see the client's docstring for each knob).

    ``rate_limit``: requests per second when you know the limit (else learned from
    429s); ``pacer``: a ``Pacer`` of your own (replaces ``rate_limit`` and ``backend``);
    ``backend``: where the learned limit lives (e.g. a ``RedisPacingBackend``); ``url``:
    a ``redis://`` URL to share it (else ``$OT_PACING_URL``; ``""`` for none; its
    password is never shown); ``fail_closed``: refuse to send, rather than pace
    locally, when that Redis is unreachable.
    """

    rate_limit: float | None = None
    pacer: Pacer | None = None
    backend: PacingBackend | None = None
    url: str | None = attrs.field(default=None, repr=_redacted_url)
    fail_closed: bool | None = None


@attrs.frozen
class RetryOptions:
    """How the client retries: ``max_retries`` (None: 5), ``max_retry_after`` (None:
    120 s; a 429 asking for a longer wait raises at once), ``on_retry`` (called with a
    ``RetryEvent`` before each wait), or a whole ``policy`` (a ``RetryPolicy``, which
    replaces the three)."""

    max_retries: int | None = None
    max_retry_after: float | None = None
    policy: RetryPolicy | None = None
    on_retry: Callable[[RetryEvent], None] | None = None


@attrs.frozen
class TimeOptions:
    """Time limits and the time seam.

    ``timeout`` (None: 30 s; seconds or an ``aiohttp.ClientTimeout``) bounds each
    request; ``reconcile_delay`` (None: 1 s) is how long a timed-out send is given to
    land before read-back; ``clock_skew`` (None: 60 s) how far before a send began a
    message found by read-back may be stamped.  ``clock``/``sleep`` (together) and
    ``wall_clock`` replace the real time, for tests (``opentrain_async.testing``).
    """

    timeout: float | aiohttp.ClientTimeout | None = None
    reconcile_delay: float | None = None
    clock_skew: float | None = None
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], Awaitable[Any]] | None = None
    wall_clock: Callable[[], float] | None = None


class FlatOptions(TypedDict, total=False):
    """The grouped knobs as the client's flat keywords (``rate_limit=500``), as before
    the groups existed.  Each is the group field named in ``FLAT_FIELDS``."""

    rate_limit: float | None
    pacer: Pacer | None
    pacing_backend: PacingBackend | None
    pacing_url: str | None
    pacing_fail_closed: bool | None
    max_retries: int | None
    max_retry_after: float | None
    retry_policy: RetryPolicy | None
    on_retry: Callable[[RetryEvent], None] | None
    timeout: float | aiohttp.ClientTimeout
    reconcile_delay: float
    clock_skew: float
    clock: Callable[[], float] | None
    sleep: Callable[[float], Awaitable[Any]] | None
    wall_clock: Callable[[], float] | None


FLAT_FIELDS: Mapping[str, tuple[str, str]] = {
    "rate_limit": ("pacing", "rate_limit"),
    "pacer": ("pacing", "pacer"),
    "pacing_backend": ("pacing", "backend"),
    "pacing_url": ("pacing", "url"),
    "pacing_fail_closed": ("pacing", "fail_closed"),
    "max_retries": ("retries", "max_retries"),
    "max_retry_after": ("retries", "max_retry_after"),
    "retry_policy": ("retries", "policy"),
    "on_retry": ("retries", "on_retry"),
    "timeout": ("time", "timeout"),
    "reconcile_delay": ("time", "reconcile_delay"),
    "clock_skew": ("time", "clock_skew"),
    "clock": ("time", "clock"),
    "sleep": ("time", "sleep"),
    "wall_clock": ("time", "wall_clock"),
}
"""Each flat keyword: its group (the client's parameter) and the field in it."""

_GROUP_CLASS = {"pacing": "PacingOptions", "retries": "RetryOptions", "time": "TimeOptions"}


def merge_options(
    pacing: PacingOptions | None,
    retries: RetryOptions | None,
    time: TimeOptions | None,
    flat: Mapping[str, object],
) -> tuple[PacingOptions, RetryOptions, TimeOptions]:
    """The three groups with the flat keywords folded in.

    An unknown keyword is a ``TypeError`` (as for any signature); a keyword whose group
    field is set to another value is a ``ConfigurationError`` naming both.  Values are
    never shown (a pacing URL may hold a password).
    """
    for name, given, cls in (
        ("pacing", pacing, PacingOptions),
        ("retries", retries, RetryOptions),
        ("time", time, TimeOptions),
    ):
        if given is not None and not isinstance(given, cls):
            raise ConfigurationError(
                f"{name}= must be a {cls.__name__}, got {type(given).__name__}"
            )
    groups: dict[str, Any] = {
        "pacing": pacing or PacingOptions(),
        "retries": retries or RetryOptions(),
        "time": time or TimeOptions(),
    }
    changes: dict[str, dict[str, object]] = {name: {} for name in groups}
    for keyword, value in flat.items():
        if keyword not in FLAT_FIELDS:
            raise UnknownOptionError(_unknown_keyword(keyword))
        group, field = FLAT_FIELDS[keyword]
        current = getattr(groups[group], field)
        if current is not None and value is not None and current != value:
            raise ConfigurationError(
                f"{keyword}= and {group}={_GROUP_CLASS[group]}({field}=...) disagree; "
                f"pass one of them"
            )
        if value is not None:
            changes[group][field] = value
    return (
        attrs.evolve(groups["pacing"], **changes["pacing"]),
        attrs.evolve(groups["retries"], **changes["retries"]),
        attrs.evolve(groups["time"], **changes["time"]),
    )


class UnknownOptionError(ConfigurationError, TypeError):
    """A keyword the client does not take: the ``TypeError`` of any signature, and an
    ``OpenTrainError`` like every other failure a caller meets."""


_CLIENT_KEYWORDS = (
    "api_token", "base_url", "max_concurrency", "pacing", "retries", "time", "session",
    "reconcile", "log_content", "user_agent", "trust_env", "max_response_bytes", "env",
    "config_path",
)  # fmt: skip


def _unknown_keyword(keyword: str) -> str:
    """The message for an unknown keyword, naming the nearest one taken."""
    known = [*FLAT_FIELDS, *_CLIENT_KEYWORDS]
    near = difflib.get_close_matches(keyword, known, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}=?" if near else ""
    return f"OpenTrainClient() got an unexpected keyword argument {keyword!r}{hint}"


def check_user_agent(user_agent: str | None) -> None:
    """A header value the server would refuse, or one that could split the request."""
    if user_agent is None:
        return
    if not isinstance(user_agent, str):
        raise ConfigurationError("user_agent must be a string")
    if not (user_agent.isascii() and user_agent.isprintable()):
        raise ConfigurationError("user_agent must be printable ASCII (no CR, LF or NUL)")


def check_groups(
    pacing: PacingOptions, retries: RetryOptions, time: TimeOptions, seam: Clock
) -> None:
    """Knobs of the wrong kind, or that contradict each other: refused rather than
    failing later or silently ignored."""
    _check_kinds(pacing, retries, time)
    if pacing.rate_limit is not None:
        check_rate_limit(pacing.rate_limit)
    _refuse_overridden_knobs(
        "retry_policy",
        retries.policy,
        max_retries=retries.max_retries,
        max_retry_after=retries.max_retry_after,
        on_retry=retries.on_retry,
    )
    _refuse_overridden_knobs(
        "pacer", pacing.pacer, rate_limit=pacing.rate_limit, pacing_backend=pacing.backend
    )
    _refuse_pacer_off_the_seam(pacing.pacer, time.clock, time.sleep)
    # The client's sleep= would silently not apply to retries (real waits in tests).
    mixed = retries.policy is not None and retries.policy.sleep is asyncio.sleep
    if mixed and seam.sleep is not asyncio.sleep:
        raise ConfigurationError(
            "retry_policy= waits with its own sleep (asyncio.sleep), not sleep=; "
            "pass sleep= to the RetryPolicy too"
        )


def _check_kinds(pacing: PacingOptions, retries: RetryOptions, time: TimeOptions) -> None:
    """Each grouped knob is of its kind (a string from the environment is not a pacer, a
    callable or a bool); named by its flat keyword."""
    kinds: list[tuple[str, object, Callable[[object], bool], str]] = [
        ("pacer", pacing.pacer, lambda v: isinstance(v, Pacer), "a Pacer"),
        ("pacing_backend", pacing.backend, _is_backend, "a PacingBackend"),
        ("pacing_fail_closed", pacing.fail_closed, _is_bool, "True or False"),
        ("retry_policy", retries.policy, lambda v: isinstance(v, RetryPolicy), "a RetryPolicy"),
        ("on_retry", retries.on_retry, callable, "a function"),
        ("clock", time.clock, callable, "a function"),
        ("sleep", time.sleep, callable, "an async function"),
        ("wall_clock", time.wall_clock, callable, "a function"),
    ]
    for name, value, ok, kind in kinds:
        if value is not None and not ok(value):
            raise ConfigurationError(f"{name} must be {kind}, got {type(value).__name__}")


def check_client_flags(
    reconcile: object, log_content: object, trust_env: object, session: object, config_path: object
) -> None:
    """The client's own switches and objects: ``reconcile``, ``log_content``,
    ``trust_env`` are bools (``trust_env="no"`` is truthy), ``session`` an
    ``aiohttp.ClientSession``, ``config_path`` a path."""
    flags = {
        "reconcile": reconcile,
        "log_content": log_content,
        "trust_env": trust_env,
        "session": session,
        "config_path": config_path,
    }
    for name, value in flags.items():
        if name == "session":
            ok, kind = value is None or isinstance(value, aiohttp.ClientSession), "a ClientSession"
        elif name == "config_path":
            ok, kind = value is None or isinstance(value, (str, os.PathLike)), "a path"
        else:
            ok, kind = _is_bool(value), "True or False"
        if not ok:
            raise ConfigurationError(f"{name} must be {kind}, got {type(value).__name__}")


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_backend(value: object) -> bool:
    """Has what the pacer calls (``PacingBackend`` is a protocol: any class may be one)."""
    methods = ("reserve", "report", "load", "aclose")
    return hasattr(value, "tuning") and all(callable(getattr(value, m, None)) for m in methods)


def retry_policy_of(retries: RetryOptions, seam: Clock) -> RetryPolicy:
    """The caller's policy, or one from the knobs (5 retries, hints up to 120 s)."""
    if retries.policy is not None:
        return retries.policy
    return RetryPolicy(
        max_retries=5 if retries.max_retries is None else retries.max_retries,
        max_retry_after=120.0 if retries.max_retry_after is None else retries.max_retry_after,
        on_retry=retries.on_retry,
        sleep=seam.sleep,
    )


def _refuse_overridden_knobs(name: str, policy: object, **knobs: object) -> None:
    """A policy object replaces the knobs it is built from: passing both is a mistake
    that would otherwise be silently ignored."""
    if policy is None:
        return
    given = [knob for knob, value in knobs.items() if value is not None]
    if given:
        raise ConfigurationError(
            f"{name}= replaces {', '.join(f'{k}=' for k in knobs)}; pass those to the "
            f"{name} itself (also given: {', '.join(given)})"
        )


def _refuse_pacer_off_the_seam(
    pacer: Pacer | None,
    clock: Callable[[], float] | None,
    sleep: Callable[[float], Awaitable[Any]] | None,
) -> None:
    """A pacer keeps the clock and sleep it was built with (its backend reads that clock
    too), so the client's ``clock=``/``sleep=`` cannot reach it: pacing on the real clock
    beside a fake one spins or really waits.  Refused unless both are the pacer's own,
    rather than swapped into a pacer the caller may share with other clients."""
    if pacer is None or clock is None or sleep is None:
        return
    if pacer._clock != clock or pacer._sleep != sleep:  # bound methods compare by owner
        raise ConfigurationError(
            "pacer= keeps its own clock and sleep, not the client's clock=/sleep=; build "
            "it on the same ones: Pacer(clock=, sleep=) with the client's"
        )
