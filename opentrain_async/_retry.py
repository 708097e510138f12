"""Which failures are retried and how long to wait: the client's tenacity policy.

=====================================  ==========  ==========================================
failure                                POST /...   GET
=====================================  ==========  ==========================================
429 with hint <= ``max_retry_after``   retry       retry (wait >= the hint, plus jitter)
429 with hint above the cap            raise       raise (the caller decides)
400 401 403 404 409                    raise       raise (exactly one request)
never reached the server (DNS, refused) retry      retry (exponential backoff, full jitter)
outcome unknown (timeout, reset, 5xx)  raise       retry 502/503/504, timeouts and resets
=====================================  ==========  ==========================================

In bulk (``send_many``/``send_all``) a 429 with a whole-second hint of 1 s (rounded:
"within the second"), or none, is not slept, every time within the retry budget: the
retry waits for the pacer's admission, which has already paused for it (an input past
its budget is sent again unpaced, its hints waited out); exact hints and hints of 2 s
or more are waited out as above, and an input refused through two budgets or more with
exact hints waits at least a growing backoff too (``resend_wait``: no retry storm).

A 429 means the server rejected the request, so retrying it can never duplicate.  An
unknown-outcome POST is not retried here: the caller turns it into
``DeliveryUnknownError`` (or reconciles by reading the conversation back).

Every wait is observable: ``on_retry`` receives a frozen ``RetryEvent`` and the
``opentrain_async`` logger gets a record with the attempt, the wait, the reason and the
request id.  ``sleep`` and ``random`` are injectable, so tests never really wait.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import tenacity

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    InternalServerError,
    RateLimitError,
)
from ._pacing.pause import is_exact, left_to_pacer
from ._validation import check_option

__all__ = ["RetryEvent", "RetryPolicy"]

logger = logging.getLogger("opentrain_async")

_RETRYABLE_GET_STATUSES = frozenset({502, 503, 504})

RESEND_FLOOR_FROM = 2
"""The first bulk engine wait of an input (each after a spent retry budget, 6 requests
by default) whose exact hint gets a backoff floor (``resend_wait``): from the 12th 429
in a row of one input, where the family simulator's bulk sends never go (its exact
hints are buckets' and windows', which admit an input within a budget or two)."""


@attrs.frozen
class RetryEvent:
    """What is about to be waited out before the next attempt of one request."""

    method: str
    path: str
    attempt: int
    """The attempt that just failed, counting from 1."""
    wait: float
    """Seconds until the next attempt."""
    reason: str
    """``rate_limited``, ``connection_failed``, ``timeout`` or ``server_error``."""
    request_id: str | None
    error: BaseException


@attrs.define(kw_only=True)
class RetryPolicy:
    """The retry rules of one client; subclass or pass your own to ``OpenTrainClient``.

    ``max_retries`` is the number of retries after the first attempt.  A 429 hint above
    ``max_retry_after`` seconds is not waited out: ``RateLimitError`` is raised at once.
    """

    max_retries: int = 5
    max_retry_after: float = 120.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.1
    """Extra wait on top of a 429 hint, as a fraction of the hint (never shortens it)."""
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    random: Callable[[], float] = _random.random
    on_retry: Callable[[RetryEvent], None] | None = None

    def __attrs_post_init__(self) -> None:
        check_option(self.max_retries, "max_retries", minimum=0, integer=True)
        # NaN or a string would let every hint pass the cap (or fail on the first 429).
        check_option(
            self.max_retry_after, "max_retry_after", minimum=0, unit=" seconds", infinite=True
        )

    def retry_reason(self, error: BaseException | None, *, idempotent: bool) -> str | None:
        """Why ``error`` may be retried, or None when it is terminal."""
        if isinstance(error, RateLimitError):
            if error.retry_after is not None and error.retry_after > self.max_retry_after:
                return None
            return "rate_limited"
        if isinstance(error, APIConnectionError):
            if error.reached_server is False:
                return "connection_failed"
            if idempotent:
                return "timeout" if isinstance(error, APITimeoutError) else "connection_failed"
            return None
        if (
            idempotent
            and isinstance(error, InternalServerError)
            and error.status in _RETRYABLE_GET_STATUSES
        ):
            return "server_error"
        return None

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the retry after ``attempt``."""
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return float(ceiling * (0.5 + self.random() / 2))

    def compute_wait(
        self,
        error: BaseException | None,
        attempt: int,
        *,
        paced: bool = False,
        reset_paced: bool = False,
    ) -> float:
        """Seconds to wait after ``attempt`` failed with ``error``.

        ``paced``: the next attempt waits for the pacer's admission and a 429 cannot end
        the request (a bulk send), so a 429 with a rounded one-second hint is the
        pacer's to wait (0 here; see ``left_to_pacer``), every time: the hint says only
        "within a second", no more than none, and waiting it out in full from a
        request's second 429 on left a bucket's refused requests asleep for most of a
        second its next token ended (2 s family, tuning seeds 0-499: 1.33x -> 1.27x).
        So is a 429 with no hint (or 0): the pacer pauses and, while the limiter stays
        shut, lets one probe through at a time (``_pacing/probe.py``), where each
        request's own backoff (up to 30 s) left the job's last messages asleep long
        after the limiter reopened.
        ``reset_paced``: so is a longer whole hint (a window's, rounded up) which the
        pacer has said it waits (``Pacer.paces_reset``: an upper bound on the reset,
        its pause ends at the earliest bound of the wall's hints); each request waiting
        out its own hint plus jitter (10% of it) woke 0.3 s or more after the reset.
        Otherwise (an exact hint, or outside a bulk send) every hint is waited out in
        full, so ``max_retries`` attempts always span at least that many hints.
        """
        if paced and isinstance(error, RateLimitError) and not error.retry_after:
            return 0.0
        if isinstance(error, RateLimitError) and error.retry_after:
            # A hint of 0 says nothing: back off as without one (taken at its word, a
            # server answering 429 with 0 to everything made send_many, whose 429s wait
            # however many it takes, a busy loop).  A tiny hint is a fast bucket's next
            # token: honoured.
            hint = error.retry_after
            if paced and (left_to_pacer(hint) or (reset_paced and not is_exact(hint))):
                return 0.0
            return hint + hint * self.jitter * self.random()
        return self.backoff(attempt)

    def resend_wait(self, error: BaseException | None, waits: int) -> float:
        """The bulk engine's wait after an input's ``waits``-th spent retry budget (a 429
        never ends a bulk send): ``compute_wait`` for the attempt numbered on from the
        budgets, and from the ``RESEND_FLOOR_FROM``-th such wait on, after an exact hint,
        at least an exponential floor (``backoff``, numbered from that wait: 0.25-0.5 s,
        then doubling to ``backoff_max``).  A hint is a minimum, not a schedule: a
        server refusing one conversation for ever with an exact 1 ms hint drew ~950
        requests a second on it for as long as the job ran (1 ns: as fast as the
        client could send); now 31 in the first 5 virtual s, 55 in the first minute,
        then one budget (6) per 15-30 s.  Whole hints and none are left as they were (the pacer's
        or waited in full)."""
        wait = self.compute_wait(error, self.max_retries + waits, paced=True)
        hint = error.retry_after if isinstance(error, RateLimitError) else None
        if waits < RESEND_FLOOR_FROM or not hint or not is_exact(hint):
            return wait
        return max(wait, self.backoff(waits - RESEND_FLOOR_FROM + 1))

    def retrying(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        paced: bool = False,
        reset_paced: Callable[[float], bool] | None = None,
    ) -> tenacity.AsyncRetrying:
        """A tenacity controller for one request under this policy (``paced``: see
        ``compute_wait``; ``reset_paced``: asked, with a 429's hint, whether the pacer
        waits it, ``Pacer.paces_reset``)."""

        def should_retry(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None or not outcome.failed:
                return False
            return self.retry_reason(outcome.exception(), idempotent=idempotent) is not None

        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            error = state.outcome.exception()
            hint = error.retry_after if isinstance(error, RateLimitError) else None
            reset = paced and bool(hint) and reset_paced is not None and reset_paced(hint or 0.0)
            return self.compute_wait(error, state.attempt_number, paced=paced, reset_paced=reset)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None
            assert state.next_action is not None
            error = state.outcome.exception()
            assert error is not None
            event = RetryEvent(
                method=method,
                path=path,
                attempt=state.attempt_number,
                wait=state.next_action.sleep,
                reason=self.retry_reason(error, idempotent=idempotent) or "unknown",
                request_id=getattr(error, "request_id", None),
                error=error,
            )
            _log_retry(event)
            if self.on_retry is not None:
                self.on_retry(event)

        return tenacity.AsyncRetrying(
            retry=should_retry,
            wait=wait,
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )


def _log_retry(event: RetryEvent) -> None:
    """The INFO record of a retry, with every field as a key (as every request's)."""
    error = event.error
    method, path = event.method, event.path
    logger.info(
        "retrying %s %s in %.3fs after attempt %d (%s, request_id=%s)",
        method,
        path,
        event.wait,
        event.attempt,
        event.reason,
        event.request_id,
        extra={
            "opentrain_retry": event,
            # The same fields as every request record (see _telemetry).
            "method": method,
            "path": path,
            "status": getattr(error, "status", None),
            "request_id": event.request_id,
            "attempt": event.attempt,
            "retry_in_s": round(event.wait, 3),
            "reason": event.reason,
        },
    )
