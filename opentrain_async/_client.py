"""``OpenTrainClient``: the facade users hold, over one request pipeline.

The client resolves its configuration (token, base URL, pacing, proxy) and builds the
parts it forwards to: the request pipeline (``_pipeline``: session, pacer, semaphore,
attempt, retries), delivery (``_delivery``: send, read-back, claimed ids), the bulk
engine (``_bulk``: one outcome per input, over ``Delivery.deliver``; its surface is the
mixin ``_sending``) and the reads (``_read``: a mixin over the pipeline's ``request``).
The option groups and their checks are ``_options``.  None of them imports this module.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp

import opentrain_async._telemetry as _telemetry

from ._bulk import SendHooks, outcome_kind
from ._config import resolve_settings, state_directory
from ._delivery import ClaimedIds, Delivery
from ._errors import OpenTrainError
from ._log_secrets import register_secret
from ._models import Message
from ._options import (
    FlatOptions,
    PacingOptions,
    RetryOptions,
    TimeOptions,
    check_client_flags,
    check_groups,
    check_user_agent,
    merge_options,
    retry_policy_of,
)
from ._pacing import Pacer
from ._pacing.selection import client_backend
from ._pipeline import MAX_RESPONSE_BYTES, ClientStats, Pipeline, as_client_timeout
from ._proxy import proxy_from_env
from ._raw import RawSink, raw_call
from ._read import ReadMixin
from ._reply import reply_once
from ._retry import RetryPolicy
from ._sending import JournalSpec, SendMixin
from ._time import clock_from_options
from ._validation import check_flag, check_option, validate_content, validate_conversation_id

if TYPE_CHECKING:
    from typing_extensions import Unpack


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


class OpenTrainClient(SendMixin, ReadMixin):
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

    The pacing, retry and time knobs are grouped: ``pacing=PacingOptions(...)``,
    ``retries=RetryOptions(...)``, ``time=TimeOptions(...)``; each may also be passed flat
    as below (``rate_limit=500`` is ``pacing=PacingOptions(rate_limit=500)``), and a flat
    keyword contradicting its group is a ``ConfigurationError``.

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
        pacing: PacingOptions | None = None,
        retries: RetryOptions | None = None,
        time: TimeOptions | None = None,
        session: aiohttp.ClientSession | None = None,
        reconcile: bool = False,
        log_content: bool = False,
        user_agent: str | None = None,
        trust_env: bool = True,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        **flat: Unpack[FlatOptions],
    ) -> None:
        pacing, retries, time = merge_options(pacing, retries, time, flat)
        seam = clock_from_options(time.clock, time.sleep, time.wall_clock)  # refused first
        reconcile_delay = 1.0 if time.reconcile_delay is None else time.reconcile_delay
        clock_skew = 60.0 if time.clock_skew is None else time.clock_skew
        check_option(max_concurrency, "max_concurrency", minimum=1, integer=True)
        check_option(max_response_bytes, "max_response_bytes", minimum=1, integer=True)
        check_option(reconcile_delay, "reconcile_delay", minimum=0, unit=" seconds")
        check_option(clock_skew, "clock_skew", minimum=0, unit=" seconds")
        check_user_agent(user_agent)
        check_client_flags(reconcile, log_content, trust_env, session, config_path)
        check_groups(pacing, retries, time, seam)
        settings = resolve_settings(api_token, base_url, env=env, config_path=config_path)
        self._settings = settings
        register_secret(self, settings.token)  # echoed in a log record: masked
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._root = settings.api_root
        self.max_concurrency = max_concurrency
        # Checked before a pacing backend (perhaps Redis) is built: nothing to close.
        client_timeout = as_client_timeout(30.0 if time.timeout is None else time.timeout)
        self.stats = ClientStats()
        self._time = seam
        """The time seam every part of this client reads time and waits through."""
        self._pipeline = Pipeline(
            settings,
            pacer=self._new_pacer(pacing),
            retry=retry_policy_of(retries, seam),
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

    def _new_pacer(self, pacing: PacingOptions) -> Pacer:
        """The caller's pacer, or one over the backend ``pacing`` names (perhaps Redis)."""
        seam = self._time
        backend = client_backend(  # also refuses a URL beside a pacer or backend
            pacer_given=pacing.pacer is not None,
            backend=pacing.backend,
            pacing_url=pacing.url,
            fail_closed=pacing.fail_closed,
            env=self._env,
            api_root=self._root,
            token=self._settings.token,
            on_fallback=self._count_pacing_fallback,
            clock=seam.monotonic,
            sleep=seam.sleep,
        )
        if pacing.pacer is not None:
            return pacing.pacer
        return Pacer(
            rate_limit=pacing.rate_limit, backend=backend, clock=seam.monotonic, sleep=seam.sleep
        )

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
        if reconcile is not None:
            check_flag(reconcile, "reconcile")
        return await self._options(timeout, max_retries)._send_checked(
            conversation_id, content, self._reconcile if reconcile is None else reconcile
        )

    async def _send_checked(
        self, conversation_id: str, content: str, reconcile: bool, checked: bool = False
    ) -> Message:
        """Check (unless ``checked``) and deliver one message, as one message span."""

        async def deliver() -> tuple[Message, bool]:
            if not checked:  # inside the span: invalid input is an outcome too
                validate_conversation_id(conversation_id)
                validate_content(content)
            return await self._delivery.deliver(conversation_id, content, reconcile)

        return await self._as_message(conversation_id, deliver())

    async def _as_message(
        self, conversation_id: str | None, send: Awaitable[tuple[Message, bool]]
    ) -> Message:
        """Await ``send`` (the message and whether read-back found it) as one message
        span with its one counted outcome; cancelled, the span ends with none."""
        span = _telemetry.message_start()
        try:
            message, reconciled = await send
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

        async def answer() -> tuple[Message, bool]:
            clock = self._time.monotonic
            message = await reply_once(
                self._delivery, self, self._replies, incoming, content, clock=clock
            )
            return message, False

        # An answer is a message: its span and counted outcome.
        return await self._as_message(getattr(incoming, "conversation_id", None), answer())

    def _journal(self, journal: JournalSpec) -> SendHooks:
        """The hooks that journal a bulk run (loaded on first use: the journal stores
        live beside the command line, see ``opentrain_async.journal``)."""
        from .journal import journaled_run

        return journaled_run(self, journal, clock=self._time)

    def _default_cursor_path(self) -> Path:
        """Where ``listen()`` keeps its cursor by default: one file per API root and
        token, named by a hash (the token itself is never written)."""
        digest = hashlib.sha256(f"{self._root}\n{self._settings.token}".encode()).hexdigest()
        state = state_directory(self._env, "listen() keeps its place", "pass store=")
        return state / "opentrain_async" / f"listen-{digest[:16]}.json"

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
            secret=self._settings.token,
            answer_headers=lambda: pipeline.answer_headers,
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
