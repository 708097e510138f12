"""A run's start and stop: the pre-send check, start-up steps a signal cuts short,
SIGINT/SIGTERM while sending (``grace`` seconds for the sends on the wire), and what
else stops a run once sending: a failure every later send would meet (``stops_run``)
and a journal that can no longer be written (``journaled``).

``StartStop`` is a base of ``Runner`` (``_run``), over the run's client, options and
the futures it is working on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from opentrain_async import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    NotFoundError,
    OpenTrainClient,
    OpenTrainError,
    RateLimitError,
    Settings,
    UnexpectedResponseError,
)
from opentrain_async._bulk import quota_gone, stops_engine

from ._journal import JournalError
from ._options import Interrupted, JobOptions, StartError
from ._summary import signal_name

__all__ = ["StartStop", "describe_error", "journaled", "stops_run"]

logger = logging.getLogger("opentrain_async.cli")
T = TypeVar("T")


def describe_error(error: OpenTrainError) -> str:
    """An error's first line (the journal and the summary keep one line per input)."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class StartStop:
    """The pre-send check, stoppable start-up steps and the signal handlers of a run."""

    options: JobOptions
    settings: Settings
    interrupted: int | None
    _work: asyncio.Future[Any] | None
    _sending: bool
    _grace: asyncio.TimerHandle | None
    _stats_before: tuple[int, int, int]
    _client: Callable[[], OpenTrainClient]
    note: Callable[[str], None]

    async def preflight(self) -> None:
        """Before the first send: the token is accepted and can send, and the base URL
        speaks the API.  Anything else is exit 3 with what to fix."""
        root = self.settings.api_root
        client = self._client()
        try:
            answer = await client.with_options(max_retries=1).preflight()
        except AuthenticationError:
            raise StartError(
                f"authentication failed: the API token (from {self.settings.token_source}) "
                f"was rejected by {root} (401)"
            ) from None
        except APIConnectionError as exc:
            raise StartError(f"cannot reach {root}: {describe_error(exc)}") from None
        except (NotFoundError, UnexpectedResponseError) as exc:
            raise StartError(
                f"{root} does not answer like the OpenTrain public API "
                f"({describe_error(exc)}); check --base-url / $OT_API_BASE_URL (an origin "
                "such as https://app.opentrain.ai, without a path)"
            ) from None
        except APIError as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise StartError(
                    f"{root} refused the pre-send check ({describe_error(exc)}); nothing was sent"
                ) from None
            logger.warning(
                "the pre-send check (GET /auth/me) answered %s; going on", describe_error(exc)
            )
            return
        finally:
            stats = client.stats
            self._stats_before = (stats.requests, stats.rate_limited, stats.retries)
        if not answer.can_send:
            fixes = "; ".join(f"{p.missing}: {p.fix}" for p in answer.problems)
            raise StartError(f"this token cannot send messages, nothing was sent. Fix: {fixes}")

    async def stoppable(self, step: Awaitable[T]) -> T:
        """Run a start-up step (the pre-send check, taking the journal) so that a
        signal stops it at once: nothing of it is on the wire worth waiting for, and a
        check retrying a slow server took 13 s to notice even a second signal.
        ``Interrupted`` when a signal stopped it (or came before it)."""
        if self.interrupted is not None:
            if inspect.iscoroutine(step):
                step.close()
            raise Interrupted(self.interrupted)
        task = asyncio.ensure_future(step)
        self._work = task
        try:
            return await task
        except asyncio.CancelledError:
            if self.interrupted is None or not task.cancelled():
                raise
            raise Interrupted(self.interrupted) from None
        finally:
            self._work = None

    # -- signals ------------------------------------------------------------------------

    def on_signal(self, signum: int) -> None:
        """SIGINT/SIGTERM: stop starting inputs; give sends on the wire ``grace`` seconds
        (a second signal: none) before cancelling them."""
        first = self.interrupted is None
        if first:
            self.interrupted = signum
        work = self._work
        if work is None or work.done():
            return
        if not self._sending or not first:
            work.cancel()  # reading, settling (reads only), or asked twice: stop now
            return
        self.note(
            f"{signal_name(signum)}: starting no new sends; waiting up to "
            f"{self.options.grace:g} s for the ones on the wire (again to stop now)"
        )
        self._grace = asyncio.get_running_loop().call_later(self.options.grace, work.cancel)

    def _cut_after_grace(self) -> None:
        """The quota is used up: sends already started wait in the pacer for the hint
        (a minute each at the pause cap), so give them ``grace`` seconds, as a first
        signal does, then stop; any left open are read back by the next run."""
        work = self._work
        if work is not None and not work.done() and self._grace is None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self.options.grace, work.cancel)

    @contextlib.contextmanager
    def signals_handled(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        installed: list[tuple[int, Any]] = []
        for signum in (int(signal.SIGINT), int(signal.SIGTERM)):
            try:
                previous = signal.getsignal(signum)
                loop.add_signal_handler(signum, self.on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue  # not the main thread, or not POSIX: default handling
            installed.append((signum, previous))
        try:
            yield
        finally:
            for signum, previous in installed:
                loop.remove_signal_handler(signum)
                if previous is not None:  # the CLI's own handler, not the default death
                    signal.signal(signum, previous)
            if self._grace is not None:
                self._grace.cancel()


def stops_run(error: OpenTrainError | None, max_wait: float = float("inf")) -> str | None:
    """Failures that will hit every later send too: stop instead of burning the input.
    A 429 whose hint is beyond what a run waits (``max_wait``, the retry policy's
    ``max_retry_after``) says the quota is gone for longer than the job can wait:
    every later send would meet it too (and crawl at the pacer's pause per input)."""
    if isinstance(error, RateLimitError) and quota_gone(error, max_wait):
        return (
            f"the API's rate limit asks to wait {error.retry_after:,.0f} s, longer than a "
            f"run waits ({max_wait:g} s): the quota is used up; rerun later to resume"
        )
    if isinstance(error, AuthenticationError):
        return "the API token was rejected (401 UNAUTHORIZED)"
    if error is not None and stops_engine(error):
        return f"this token cannot send: {describe_error(error)}"
    if isinstance(error, APIConnectionError) and error.reached_server is False:
        return f"the server is unreachable ({describe_error(error)})"
    return None


async def journaled(write: Awaitable[None]) -> str | None:
    """Write an outcome's record: a journal that cannot be written (a lost Redis lease,
    its records evicted) stops the run, which still prints its summary."""
    try:
        await write
    except JournalError as exc:
        return str(exc)
    return None
