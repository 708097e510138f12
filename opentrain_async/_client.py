"""``OpenTrainClient``: the facade users hold, over one request pipeline.

The client resolves its configuration (token, base URL, pacing, proxy) and builds the
parts it forwards to: the request pipeline (``_pipeline``: session, pacer, semaphore,
attempt, retries), delivery (``_delivery``: send, read-back, claimed ids), the bulk
engine (``_bulk``: one outcome per input, over ``Delivery.deliver``) and the reads
(``_read``: a mixin over the pipeline's ``request``).  None of them imports this module.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Container, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

import opentrain_async._telemetry as _telemetry

from ._bulk import (
    DEFAULT_KEEP_FAILURES,
    BulkReport,
    BulkSend,
    OnFailure,
    SendHooks,
    SendItem,
    SendOutcome,
    outcome_kind,
    run_batch,
)
from ._config import resolve_settings
from ._delivery import ClaimedIds, Delivery
from ._errors import ConfigurationError, OpenTrainError
from ._models import Message
from ._pacing import Pacer, PacingBackend
from ._pacing.redis_backend import client_backend
from ._pipeline import MAX_RESPONSE_BYTES, ClientStats, Pipeline, as_client_timeout
from ._proxy import proxy_from_env
from ._raw import RawSink, raw_call
from ._read import ReadMixin
from ._reply import reply_once
from ._retry import RetryEvent, RetryPolicy
from ._time import clock_from_options
from ._validation import check_option, validate_content, validate_conversation_id

JournalSpec = Any
"""``journal=``: a path (``str``/``os.PathLike``), a ``redis://...?job=NAME`` URL, or a
journal store (see ``opentrain_async.journal``)."""

__all__ = [
    "MAX_RESPONSE_BYTES",
    "ClientStats",
    "OpenTrainClient",
    "RawResponseClient",
    "send_message",
]

DEFAULT_MAX_CONCURRENCY = 64
"""Requests on the wire per client by default.  Measured (``python -m
benchmarks.concurrency``, fake server with 100 ms latency): 8 caps a job at 74 msg/s,
64 reaches 428; behind a 200/s token bucket 64 is as fast as 32 (and 2.4x 8) for 3% more
429s, with pacing keeping losses and duplicates at zero."""


class OpenTrainClient(ReadMixin):
    """Async client for the OpenTrain public API's messaging surface.

    Use it as an async context manager and share one instance across tasks::

        async with OpenTrainClient() as client:
            message = await client.send_message("conv_123", "Batch 7 is live")

    ``api_token`` and ``base_url`` default to the environment and the official CLI's
    config file (see ``resolve_settings``).  ``max_concurrency`` bounds requests on the
    wire; ``rate_limit`` (requests per second) paces smoothly when you know the limit,
    and otherwise the client learns it from 429s.  ``clock`` and ``sleep`` are injectable
    (together: a fake sleep on the real clock would spin through long waits) so that
    backoff and pacing are testable without waiting.

    Redirects are never followed (``RedirectError``), a passed ``session``'s
    ``raise_for_status`` is overridden, and an answer body over ``max_response_bytes``
    is not read (a typed error instead).

    ``pacing_url="redis://host:6379/0"`` (else ``$OT_PACING_URL``; ``""`` for none)
    shares one learned limit with every process sending with this token, in Redis; it
    fails open (local pacing, counted in ``stats.pacing_fallbacks``) unless
    ``pacing_fail_closed=True``; a shared state no pacer would write (corrupt) is
    paced around locally too, with a warning.  ``rate_limit`` stays this process's
    own: it caps this client, never the shared schedule, so a neighbour told 1/s does
    not slow the others (to cap a fleet, give each process its share).  Holding a
    ``redis.asyncio.Redis`` already, pass ``pacing_backend=RedisPacingBackend(redis)``
    instead.  A password in the URL may hold any character (all up to the last ``@``
    is the userinfo) and is never shown.

    ``reconcile=True`` makes single sends read the conversation back after an unknown
    outcome (bulk sends always do unless told not to); ``reconcile_delay`` is how long
    to let a timed-out request finish server-side first, ``clock_skew`` how far before
    the first attempt a found message may be stamped.
    """

    def __init__(
        self,
        api_token: str | None = None,
        base_url: str | None = None,
        *,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_retries: int | None = None,
        max_retry_after: float | None = None,
        timeout: float | aiohttp.ClientTimeout = 30.0,
        rate_limit: float | None = None,
        retry_policy: RetryPolicy | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        pacer: Pacer | None = None,
        pacing_backend: PacingBackend | None = None,
        pacing_url: str | None = None,
        pacing_fail_closed: bool | None = None,
        session: aiohttp.ClientSession | None = None,
        reconcile: bool = False,
        reconcile_delay: float = 1.0,
        clock_skew: float = 60.0,
        log_content: bool = False,
        user_agent: str | None = None,
        trust_env: bool = True,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        seam = clock_from_options(clock, sleep, wall_clock)  # refused before anything else
        check_option(max_concurrency, "max_concurrency", minimum=1, integer=True)
        check_option(max_response_bytes, "max_response_bytes", minimum=1, integer=True)
        check_option(reconcile_delay, "reconcile_delay", minimum=0, unit=" seconds")
        check_option(clock_skew, "clock_skew", minimum=0, unit=" seconds")
        if rate_limit is not None:
            check_option(rate_limit, "rate_limit", minimum=0, strict=True, unit=" per second")
        if user_agent is not None and not isinstance(user_agent, str):
            raise ConfigurationError("user_agent must be a string")
        _refuse_overridden_knobs(
            "retry_policy",
            retry_policy,
            max_retries=max_retries,
            max_retry_after=max_retry_after,
            on_retry=on_retry,
        )
        _refuse_overridden_knobs(
            "pacer", pacer, rate_limit=rate_limit, pacing_backend=pacing_backend
        )
        _refuse_pacer_off_the_seam(pacer, clock, sleep)
        # The client's sleep= would silently not apply to retries (real waits in tests).
        mixed = retry_policy is not None and retry_policy.sleep is asyncio.sleep
        if mixed and seam.sleep is not asyncio.sleep:
            raise ConfigurationError(
                "retry_policy= waits with its own sleep (asyncio.sleep), not sleep=; "
                "pass sleep= to the RetryPolicy too"
            )
        if user_agent is not None and not (user_agent.isascii() and user_agent.isprintable()):
            raise ConfigurationError("user_agent must be printable ASCII (no CR, LF or NUL)")
        settings = resolve_settings(api_token, base_url, env=env, config_path=config_path)
        self._settings = settings
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._root = settings.api_root
        self.max_concurrency = max_concurrency
        # Checked before a pacing backend (perhaps Redis) is built: nothing to close.
        client_timeout = as_client_timeout(timeout)
        retry = retry_policy or RetryPolicy(
            max_retries=5 if max_retries is None else max_retries,
            max_retry_after=120.0 if max_retry_after is None else max_retry_after,
            on_retry=on_retry,
            sleep=seam.sleep,
        )
        self.stats = ClientStats()
        pacing_backend = client_backend(
            pacer_given=pacer is not None,
            backend=pacing_backend,
            pacing_url=pacing_url,
            fail_closed=pacing_fail_closed,
            env=self._env,
            api_root=self._root,
            token=settings.token,
            on_fallback=self._count_pacing_fallback,
            clock=seam.monotonic,
            sleep=seam.sleep,
        )
        self._time = seam
        """The time seam every part of this client reads time and waits through."""
        self._pipeline = Pipeline(
            settings,
            pacer=pacer
            or Pacer(
                rate_limit=rate_limit,
                backend=pacing_backend,
                clock=seam.monotonic,
                sleep=seam.sleep,
            ),
            retry=retry,
            timeout=client_timeout,
            max_concurrency=max_concurrency,
            stats=self.stats,
            session=session,
            proxy=proxy_from_env(self._root, self._env) if trust_env else None,
            user_agent=user_agent,
            max_response_bytes=max_response_bytes,
            clock=seam.monotonic,
        )
        self._reconcile = reconcile
        self._delivery = self._new_delivery(
            None, reconcile_delay=reconcile_delay, clock_skew=clock_skew, log_content=log_content
        )
        self._init_reads(self._pipeline.for_call, self._time, self._default_cursor_path)
        self._delivery.claimed.include(self._replies)  # replies saved by listen() too

    def __repr__(self) -> str:
        return (
            f"OpenTrainClient(api_root={self._root!r}, max_concurrency={self.max_concurrency}, "
            f"token=<redacted>)"
        )

    @property
    def api_root(self) -> str:
        """The API root URL requests go to (``<origin>/api/public/v1``)."""
        return self._root

    @property
    def in_flight(self) -> int:
        """Requests on the wire right now (this client and its ``with_options`` copies)."""
        return self.stats.in_flight

    @property
    def pacer(self) -> Pacer:
        """The rate control shared by every request of this client."""
        return self._pipeline.pacer

    def _count_pacing_fallback(self) -> None:
        self.stats.pacing_fallbacks += 1
        _telemetry.count("opentrain.pacing.fallbacks")

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry rules this client applies."""
        return self._pipeline.retry_policy

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> OpenTrainClient:
        self._pipeline.open()  # entering again reopens a closed client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it; the client cannot send after.

        A ``with_options`` copy only stops itself: the session is its parent's.
        """
        await self._pipeline.close()

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> OpenTrainClient:
        """A copy of this client with another timeout or retry budget (as openai-python).

        The copy shares everything else: the session, the pacer and the concurrency
        limit, the ids read-back has claimed, the stats.  It is cheap (no new
        connection), so ``client.with_options(timeout=5).send_message(...)`` is fine.
        Closing the copy leaves this client open.
        """
        return self._copy(self._pipeline.with_options(timeout=timeout, max_retries=max_retries))

    def _recording(self, sink: RawSink) -> OpenTrainClient:
        """A copy whose pipeline records each successful answer into ``sink`` (what
        ``with_raw_response`` calls run on)."""
        return self._copy(self._pipeline.with_options(raw_sink=sink))

    def _copy(self, pipeline: Pipeline) -> OpenTrainClient:
        """This client over another pipeline copy, sharing everything else."""
        copy = object.__new__(OpenTrainClient)
        copy.__dict__.update(self.__dict__)
        copy._pipeline = pipeline
        delivery = self._delivery
        copy._delivery = copy._new_delivery(  # one set of claimed ids
            delivery.claimed,
            reconcile_delay=delivery.reconcile_delay,
            clock_skew=delivery.clock_skew,
            log_content=delivery.log_content,
        )
        copy._init_reads(copy._pipeline.for_call, copy._time, copy._default_cursor_path)
        return copy

    @property
    def with_raw_response(self) -> RawResponseClient:
        """The same calls, returning a ``RawResponse``: ``.parse()`` is the usual result,
        with ``.request_id``, ``.status_code`` and ``.headers`` of the answer::

            raw = await client.with_raw_response.send_message(cid, "hi")
            print(raw.request_id, raw.parse().id)
        """
        return RawResponseClient(self)

    def _options(
        self, timeout: float | aiohttp.ClientTimeout | None, max_retries: int | None
    ) -> OpenTrainClient:
        """This client, or a ``with_options`` copy when a call overrides an option."""
        if timeout is None and max_retries is None:
            return self
        return self.with_options(timeout=timeout, max_retries=max_retries)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        idempotent: bool | None = None,
    ) -> tuple[int, Any]:
        """Send one API request through the pipeline with the retry policy applied.

        ``path`` is relative to the API root (``/messages``).  Returns the status and
        the decoded JSON body.  ``idempotent`` defaults to True for GET only; a
        non-idempotent request is retried only when it certainly never reached the
        server, or on 429.
        """
        return await self._pipeline.request(
            method, path, params=params, json_body=json_body, idempotent=idempotent
        )

    # -- messages --------------------------------------------------------------------

    async def send_message(
        self,
        conversation_id: str,
        content: str,
        *,
        reconcile: bool | None = None,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> Message:
        """Send a plain-text message; returns the created ``Message``.

        Input is validated locally first (``InvalidRequestError``).  If the outcome is
        unknown (timeout after the request was written, dropped connection, 5xx), the
        message is never resent blindly.  With ``reconcile`` off (the default for single
        sends, unless the client was built with ``reconcile=True``) that raises
        ``DeliveryUnknownError``; with it on, the conversation is read back first:
        found means delivered, not found means it is safe to resend.  ``timeout`` and
        ``max_retries`` apply to this call alone (see ``with_options``).
        """
        return await self._options(timeout, max_retries)._send_checked(
            conversation_id, content, self._reconcile if reconcile is None else reconcile
        )

    async def _send_checked(
        self, conversation_id: str, content: str, reconcile: bool, checked: bool = False
    ) -> Message:
        """Check (unless ``checked``) and deliver one message, as one message span."""
        span = _telemetry.message_start()  # the message's span; its outcome is counted
        try:
            if not checked:  # inside the span: invalid input is an outcome too
                validate_conversation_id(conversation_id)
                validate_content(content)
            message, reconciled = await self._delivery.deliver(conversation_id, content, reconcile)
        except OpenTrainError as exc:
            _telemetry.message_end(span, outcome_kind(exc), conversation_id=conversation_id)
            raise
        except BaseException:  # cancelled: no outcome, but the span ends here
            _telemetry.message_end(span, None)
            raise
        _telemetry.message_end(span, "sent", conversation_id=conversation_id, reconciled=reconciled)
        return message

    async def reply(self, incoming: Message, content: str) -> Message:
        """Answer an incoming message once: the answer already sent, or a new one.

        Reads the conversation back to ``incoming`` first: a message of ours with exactly
        ``content``, stamped after it and not another send's, is the answer a crashed run
        already sent, and nothing is sent (see ``_reply``).  Otherwise sends as
        ``send_message`` with ``reconcile=True``.  Costs one read per reply; raises
        ``DeliveryUnknownError`` rather than send when it cannot read back that far.
        """
        span = _telemetry.message_start()  # an answer is a message: its span and outcome
        conversation_id = getattr(incoming, "conversation_id", None)
        try:
            message = await reply_once(
                self._delivery, self, self._replies, incoming, content, clock=self._time.monotonic
            )
        except OpenTrainError as exc:
            _telemetry.message_end(span, outcome_kind(exc), conversation_id=conversation_id)
            raise
        except BaseException:  # cancelled: no outcome, but the span ends here
            _telemetry.message_end(span, None)
            raise
        _telemetry.message_end(span, "sent", conversation_id=conversation_id)
        return message

    def send_many(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        grace: float = 5.0,
        before_send: Callable[[Any], Awaitable[None]] | None = None,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        journal: JournalSpec | None = None,
    ) -> BulkSend:
        """Send many messages; an async iterator with exactly one ``SendOutcome`` per input.

        ``items`` is any iterable or async iterable of ``(conversation_id, content)``
        tuples, mappings with ``conversationId``/``content`` (optional ``key``), or
        ``OutgoingMessage``s; it is pulled lazily as capacity frees up.  Outcomes arrive
        in completion order; ``outcome.index`` is the input position.  ``concurrency``
        (default: ``max_concurrency``) bounds inputs in progress; the client's
        semaphore still bounds requests on the wire and its pacer the rate.  Unknown
        outcomes are reconciled by read-back unless ``reconcile=False``.  Leaving the
        loop early (``break`` or an exception under ``async with``, or ``aclose()``)
        starts no new send and gives sends on the wire ``grace`` seconds to finish; the
        outcomes the loop did not see are then in ``.unreported``.  ``before_send`` is
        awaited with each valid input right before its send (a journal's durable
        "started" record); an ``OpenTrainError`` it raises is that input's outcome.

        ``ordered`` (default) sends the inputs of one conversation one after the other,
        each once the one before has its outcome; when one fails for good the rest of
        its conversation gets ``BlockedByEarlierFailureError`` unless
        ``on_failure="continue"``.  ``journal`` (a path, a ``redis://...?job=NAME`` URL
        or a store) makes the run exactly-once across retries: see ``send_all``.
        """
        return BulkSend(
            self._delivery.deliver,
            items,
            policy=self._pipeline.retry_policy,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            grace=grace,
            before_send=before_send,
            ordered=ordered,
            on_failure=on_failure,
            hooks=None if journal is None else self._journal(journal),
        )

    async def send_all(
        self,
        items: Iterable[SendItem] | AsyncIterable[SendItem],
        *,
        concurrency: int | None = None,
        reconcile: bool = True,
        on_outcome: Callable[[SendOutcome], Awaitable[None] | None] | None = None,
        keep_failures: int = DEFAULT_KEEP_FAILURES,
        ordered: bool = True,
        on_failure: OnFailure = "stop",
        journal: JournalSpec | None = None,
    ) -> BulkReport:
        """Send a whole batch and return a ``BulkReport`` (counts by kind, failed items).

        ``on_outcome`` is called with every outcome as it arrives (e.g. for progress), one
        call at a time (an async one is awaited before the next starts).  If it raises,
        the batch stops and the exception propagates.  The report keeps the first
        ``keep_failures`` failed outcomes and counts the rest.  ``ordered`` and
        ``on_failure`` are as in ``send_many``.

        ``journal="jobs/batch7.journal"`` (or ``"redis://host/0?job=batch7"``, or a
        store from ``opentrain_async.journal``) records every send durably before it
        starts, so a task retried after a crash sends nothing twice: what the journal
        has as delivered is reported again without a send, a send left open is read
        back first.  A second run of the same job while one is under way raises
        ``JobBusyError``; an unusable journal ``JobJournalError``.
        """
        return await run_batch(
            self._delivery.deliver,
            items,
            policy=self._pipeline.retry_policy,
            clock=self._time.monotonic,
            concurrency=self.max_concurrency if concurrency is None else concurrency,
            reconcile=reconcile,
            on_outcome=on_outcome,
            keep_failures=keep_failures,
            ordered=ordered,
            on_failure=on_failure,
            hooks=None if journal is None else self._journal(journal),
        )

    def _journal(self, journal: JournalSpec) -> SendHooks:
        """The hooks that journal a bulk run (loaded on first use: the journal stores
        live beside the command line, see ``opentrain_async.journal``)."""
        from .journal import journaled_run

        return journaled_run(self, journal, clock=self._time)

    async def find_own_message(
        self, conversation_id: str, content: str, *, since: float
    ) -> Message | None:
        """Read the conversation back for a message of ours with this content.

        Matches a message from the viewer with exactly ``content``, created at or after
        ``since`` (a Unix timestamp: when the send began) less ``clock_skew``, and not
        already attributed to another send of this client.  Used to settle sends whose
        outcome is unknown, e.g. by a journal after a crash.  Raises
        ``DeliveryUnknownError`` when the conversation cannot be read back far enough.
        """
        validate_conversation_id(conversation_id)
        return await self._delivery.find_own_message(conversation_id, content, since=since)

    def _default_cursor_path(self) -> Path:
        """Where ``listen()`` keeps its cursor by default: one file per API root and
        token, named by a hash (the token itself is never written)."""
        digest = hashlib.sha256(f"{self._root}\n{self._settings.token}".encode()).hexdigest()
        state = self._env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(state) / "opentrain_async" / f"listen-{digest[:16]}.json"

    def claim_ids(self, message_ids: Container[str]) -> None:
        """Tell read-back that these message ids already belong to other sends.

        A journal of an earlier run passes the ids it recorded as delivered, so that a
        message is never credited to two inputs with the same conversation and text.
        The collection is consulted live, not copied: ids added to it later count too.
        """
        self._delivery.claimed.include(message_ids)

    @property
    def reconcile_delay(self) -> float:
        """Seconds a timed-out send is given to finish server-side before read-back."""
        return self._delivery.reconcile_delay

    @reconcile_delay.setter
    def reconcile_delay(self, value: float) -> None:
        self._delivery.reconcile_delay = value

    @property
    def clock_skew(self) -> float:
        """How far before a send began a message found by read-back may be stamped."""
        return self._delivery.clock_skew

    @clock_skew.setter
    def clock_skew(self, value: float) -> None:
        self._delivery.clock_skew = value

    @property
    def log_content(self) -> bool:
        """Whether message content may appear in DEBUG log records."""
        return self._delivery.log_content

    @log_content.setter
    def log_content(self, value: bool) -> None:
        self._delivery.log_content = value

    def _new_delivery(
        self,
        claimed: ClaimedIds | None,
        *,
        reconcile_delay: float,
        clock_skew: float,
        log_content: bool,
    ) -> Delivery:
        """This client's sending, over its own pipeline (a copy's timeout and retries)."""
        pipeline = self._pipeline
        return Delivery(
            pipeline.attempt,
            pipeline.retry_after,
            self,
            pipeline.retry_policy,
            self._time,
            claimed=claimed,
            reconcile_delay=reconcile_delay,
            clock_skew=clock_skew,
            log_content=log_content,
        )


class RawResponseClient:
    """``client.with_raw_response``: each method as on the client, returning a
    ``RawResponse`` around its usual result (see ``_raw``)."""

    def __init__(self, client: OpenTrainClient) -> None:
        self.send_message = raw_call(
            client.send_message, lambda sink: client._recording(sink).send_message
        )
        self.request = raw_call(client.request, lambda sink: client._recording(sink).request)
        self.read_messages = raw_call(
            client.read_messages, lambda sink: client._recording(sink).read_messages
        )
        self.list_conversations = raw_call(
            client.list_conversations, lambda sink: client._recording(sink).list_conversations
        )
        self.get_updates = raw_call(
            client.get_updates, lambda sink: client._recording(sink).get_updates
        )
        self.start_proposal_conversation = raw_call(
            client.start_proposal_conversation,
            lambda sink: client._recording(sink).start_proposal_conversation,
        )
        self.whoami = raw_call(client.whoami, lambda sink: client._recording(sink).whoami)
        self.capabilities = raw_call(
            client.capabilities, lambda sink: client._recording(sink).capabilities
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


async def send_message(
    conversation_id: str,
    content: str,
    *,
    api_token: str | None = None,
    base_url: str | None = None,
    timeout: float | aiohttp.ClientTimeout = 30.0,
    max_retries: int | None = None,
    reconcile: bool = False,
    trust_env: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> Message:
    """One-shot send for bots: a client is opened, used once and closed.

    Token and base URL resolve exactly as ``OpenTrainClient`` does; the options mean
    what they mean there.  Share one ``OpenTrainClient`` instead when sending many.
    """
    # Checked once, here, before any client exists (bad input fails without a token);
    # then straight to delivery, which takes input as checked.
    validate_conversation_id(conversation_id)
    validate_content(content)
    async with OpenTrainClient(
        api_token,
        base_url,
        timeout=timeout,
        max_retries=max_retries,
        reconcile=reconcile,
        trust_env=trust_env,
        session=session,
    ) as client:
        return await client._send_checked(conversation_id, content, reconcile, checked=True)
