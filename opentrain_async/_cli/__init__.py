"""The ``opentrain-async`` command line (also ``python -m opentrain_async``).

Commands: ``send`` (one message), ``bulk`` (a JSONL/CSV job, crash-safe with its
journal, in a file or on Redis), ``journal show|export`` (what a job's journal says) and
``demo`` (a bulk job against the embedded fake server).  The token
is never a flag: it comes from ``OT_API_TOKEN``/``OPENTRAIN_API_TOKEN`` or the official
CLI's config file, exactly as the client resolves it.

Exit codes: 0 all delivered; 1 some inputs failed; 2 usage or input error; 3 could not
start (no token, token rejected, server unreachable).  Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from opentrain_async._client import OpenTrainClient
from opentrain_async._config import Settings, api_root, resolve_settings
from opentrain_async._errors import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    DeliveryUnknownError,
    InvalidRequestError,
    NotFoundError,
    OpenTrainError,
    UnexpectedResponseError,
)
from opentrain_async._logs import TEXT_FORMAT, formatter, log_format_from_env
from opentrain_async._models import Message
from opentrain_async._validation import validate_content, validate_conversation_id

from ._input import InputError, JobSource
from ._job import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_START,
    EXIT_USAGE,
    Interrupted,
    JobOptions,
    JournalError,
    StartError,
    dry_run,
    run_job,
)
from ._journal_redis import (
    JournalLostError,
    JournalUnavailableError,
    RedisJournalStore,
    RedisJournalURL,
    is_redis_url,
)
from ._parser import PROG, _pacing_url_problem, build_parser
from ._progress import describe_retry
from ._read import print_json, terminal_safe, without_token, without_token_in

__all__ = ["build_parser", "main"]


def _auth_failed(settings: Settings | None = None) -> str:
    """The one wording of a 401, whichever command met it."""
    if settings is None:
        return "authentication failed: the API token was rejected (401)"
    return (
        f"authentication failed: the API token (from {settings.token_source}) was rejected "
        f"by {settings.api_root} (401)"
    )


def _fail(message: str, code: int) -> int:
    # One line whatever the server said: its text may hold newlines or escape sequences.
    print(f"{PROG}: error: {terminal_safe(message)}", file=sys.stderr, flush=True)
    return code


def _output_closed() -> int:
    """Quietly end as SIGPIPE ends a tool (141): what is left in stdout's buffer goes
    nowhere, not into a "BrokenPipeError" at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141  # 128 + SIGPIPE


def _setup_logging(verbose: int, log_format: str | None = None) -> None:
    sdk = logging.getLogger("opentrain_async")
    # OPENTRAIN_LOG's stderr handler (the CLI's own prints each line); installing it read
    # $OPENTRAIN_LOG_FORMAT already, and said so if it was not a format.
    read_format = bool(sdk.handlers)
    sdk.handlers.clear()
    if not verbose:  # OPENTRAIN_LOG=info|debug (applied at import) counts as -v / -vv
        verbose = {logging.INFO: 1, logging.DEBUG: 2}.get(sdk.level, 0)
    if not verbose:
        logging.getLogger("opentrain_async").setLevel(logging.WARNING)
        level, fmt = logging.WARNING, f"{PROG}: %(message)s"
    else:
        level = logging.DEBUG if verbose > 1 else logging.INFO
        fmt = TEXT_FORMAT  # OPENTRAIN_LOG's format too
    handler = logging.StreamHandler(sys.stderr)
    log_format = log_format or log_format_from_env(report=not read_format)
    handler.setFormatter(formatter(log_format, fmt))
    logging.basicConfig(level=level, handlers=[handler])


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise InputError("stdin is not UTF-8 text") from None


def _show_message(message: Message, out: TextIO) -> None:
    content = without_token_in(message.content, out)  # before the cut: none of it shows
    preview = content if len(content) <= 200 else content[:199] + "…"
    created = message.to_dict()["createdAt"]
    sent = f"sent {message.id} to {message.conversation_id} at {created}"
    print(terminal_safe(sent), file=out)
    print(f"  {terminal_safe(preview)}", file=out)


async def _not_found(settings: Settings, conversation_id: str, exc: NotFoundError) -> int:
    """A 404 from ``send`` or ``messages``: a mistyped conversation id (exit 1), or a base
    URL that is not the API (a path after the origin: exit 3), told apart by asking the
    API who we are, as ``bulk``'s pre-send check does."""
    try:
        async with OpenTrainClient(settings.token, settings.api_root, max_retries=0) as client:
            await client.whoami()
    except (NotFoundError, UnexpectedResponseError):
        return _fail(
            f"{settings.api_root} does not answer like the OpenTrain public API ({exc}); "
            "check --base-url / $OT_API_BASE_URL (an origin such as https://app.opentrain.ai, "
            "without a path)",
            EXIT_START,
        )
    except OpenTrainError:
        pass  # cannot tell: report the 404 as the conversation's
    return _fail(
        f"conversation {conversation_id!r} not found (404) for this token: check the id; "
        f"`{PROG} conversations` lists yours",
        EXIT_FAILED,
    )


_ON_THE_WIRE: list[str] = []
"""The conversation ``send`` may have a POST on the wire to: a signal then cannot say
"nothing was sent" (``main`` reads it; a signal may land outside the coroutine)."""


async def _send_noted(client: OpenTrainClient, conversation_id: str, text: str) -> Message:
    """``send_message``, noted in ``_ON_THE_WIRE`` until it returns or fails; a signal
    (a ``BaseException``) leaves the note for ``main``."""
    _ON_THE_WIRE.append(conversation_id)
    try:
        message = await client.send_message(conversation_id, text)
    except Exception:
        _ON_THE_WIRE.clear()
        raise
    _ON_THE_WIRE.clear()
    return message


def _interrupted(signum: int) -> str:
    name = signal.Signals(signum).name
    if not _ON_THE_WIRE:
        return f"interrupted by {name}"
    conv = _ON_THE_WIRE[-1]
    return (
        f"interrupted by {name} while sending to {conv}: the message may or may not have "
        f"been delivered; `{PROG} messages {conv}` shows whether it was before you send "
        "it again"
    )


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    if args.text == "-" and sys.stdin.isatty():
        print("type the message, then Ctrl-D on a new line:", file=sys.stderr, flush=True)
    text = _read_stdin() if args.text == "-" else args.text
    if args.text == "-" and text.endswith("\n"):
        text = text[:-1].removesuffix("\r")  # the newline echo and heredocs add
    try:
        validate_conversation_id(args.conversation_id)
        validate_content(text)
    except InvalidRequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    async with OpenTrainClient(
        settings.token, settings.api_root, reconcile=True, pacing_url=args.pacing_url
    ) as client:
        attempts = client.retry_policy.max_retries + 1
        client.retry_policy.on_retry = lambda event: print(  # never a silent wait
            f"{PROG}: {describe_retry(event, attempts)}", file=sys.stderr, flush=True
        )
        try:
            message = await _send_noted(client, args.conversation_id, text)
        except AuthenticationError:
            return _fail(_auth_failed(settings), EXIT_START)
        except NotFoundError as exc:
            return await _not_found(settings, args.conversation_id, exc)
        except DeliveryUnknownError as exc:  # before APIConnectionError, its parent
            return _fail(f"outcome unknown (may or may not have been sent): {exc}", EXIT_FAILED)
        except APIConnectionError as exc:
            if exc.reached_server is False:
                return _fail(f"cannot reach {settings.api_root}: {exc}", EXIT_START)
            return _fail(str(exc), EXIT_FAILED)
        except OpenTrainError as exc:
            return _fail(f"not sent: {exc}", EXIT_FAILED)
    out = without_token(sys.stdout, settings)  # a message may quote the token
    if args.json:
        print_json(message, out)
    else:
        _show_message(message, out)
    return EXIT_OK


def _job_options(args: argparse.Namespace) -> JobOptions:
    redis_url = args.journal is not None and is_redis_url(args.journal)
    return JobOptions(
        concurrency=args.concurrency,
        rate=args.rate,
        journal=Path(args.journal) if args.journal is not None and not redis_url else None,
        # --dry-run only reads the job: it takes no lease, so it works while a run goes on.
        journal_store=RedisJournalStore(RedisJournalURL.parse(args.journal), read_only=args.dry_run)
        if redis_url
        else None,
        no_journal=args.no_journal,
        allow_changed=args.allow_changed,
        reuse_journal=args.reuse_journal,
        failures=args.failures,
        grace=args.grace,
        retry_failed=args.retry_failed,
        ordered=not args.unordered,
        on_failure=args.on_failure,
        dry_run=args.dry_run,
        strict=args.strict,
        json=args.json,
        live=sys.stderr.isatty(),
        progress_interval=args.progress_interval,
        pacing_url=args.pacing_url,
    )


async def _bulk(args: argparse.Namespace) -> int:
    if args.file == "-":
        source = JobSource("<stdin>", fmt=args.format, stdin_text=_read_stdin())
    else:
        source = JobSource(args.file, fmt=args.format)
    options = _job_options(args)
    no_journal = options.journal_store is None and options.journal is None
    if options.retry_failed and no_journal and (options.no_journal or source.is_stdin):
        raise InputError(
            "--retry-failed resends what a journal recorded as failed: "
            + ("drop --no-journal" if options.no_journal else "add --journal PATH for stdin")
        )
    if options.dry_run:
        return await dry_run(source, options, sys.stdout, sys.stderr)
    settings = resolve_settings(None, args.base_url)
    from ._metrics import serving_metrics

    with serving_metrics(args.metrics_port, sys.stderr):
        # The streams of now, not the import's defaults (a caller may have redirected them).
        return await run_job(source, options, settings, out=sys.stdout, err=sys.stderr)


def _quiet_signalled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A signal raised inside one of the loop's tasks (aiohttp writing a request, say)
    is also left on that task: ``main`` already said it in one line, so asyncio's "Task
    exception was never retrieved" and its traceback are not printed as well."""
    if not isinstance(context.get("exception"), _Signalled):
        loop.default_exception_handler(context)


async def _main(args: argparse.Namespace) -> int:
    asyncio.get_running_loop().set_exception_handler(_quiet_signalled)
    if args.command == "send":
        settings = resolve_settings(None, args.base_url)
        return await _send(args, settings)
    if args.command == "bulk":
        return await _bulk(args)
    if args.command == "journal":
        from ._journal_cmd import journal_command

        return await journal_command(args, sys.stdout, sys.stderr)
    if args.command in ("conversations", "messages"):
        from ._read import list_conversations, show_messages

        settings = resolve_settings(None, args.base_url)
        command = list_conversations if args.command == "conversations" else show_messages
        try:
            return await command(args, settings, sys.stdout)
        except AuthenticationError:
            return _fail(_auth_failed(settings), EXIT_START)
        except NotFoundError as exc:
            if args.command == "messages":
                return await _not_found(settings, args.conversation_id, exc)
            raise
    from ._demo import run_demo

    return await run_demo(messages=args.messages, server_rate=args.server_rate, as_json=args.json)


class _Signalled(KeyboardInterrupt):
    """SIGINT/SIGTERM while no run is handling signals (starting, or printing the end)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: FrameType | None) -> None:
    raise _Signalled(signum)


def _handle_signals_early() -> dict[int, Any]:
    """Until a run installs its own handling (and again after it), SIGINT and SIGTERM
    end the command with one line and 128+N: never a traceback, never a silent -15.
    Returns the handlers replaced (restored when ``main`` returns)."""
    replaced: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            replaced[signum] = signal.signal(signum, _raise_signalled)
        except (ValueError, OSError):  # not the main thread (tests call main in one)
            break
    return replaced


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, map every expected failure to one line and an exit code."""
    replaced = _handle_signals_early()
    try:
        return _main_unguarded(argv)
    except _Signalled as exc:  # no run was sending (before it, or after its summary)
        return _fail(_interrupted(exc.signum), 128 + exc.signum)
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        return _fail(
            f"interrupted by {name} before any send started; nothing was sent",
            128 + exc.signum,
        )
    finally:
        for signum, handler in replaced.items():
            if handler is not None:
                signal.signal(signum, handler)


def _main_unguarded(argv: Sequence[str] | None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # Text from the server may hold lone surrogates (JSON "\\ud800"), which UTF-8
        # cannot encode: print them escaped rather than die with a traceback.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo" and args.base_url is not None:
        parser.error("demo runs its own fake server: --base-url does not apply")
    if args.base_url is not None:
        try:
            api_root(args.base_url)
        except ConfigurationError as exc:  # a bad flag is a usage error (2), not "could not start"
            return _fail(f"--base-url: {exc}", EXIT_USAGE)
    problem = _pacing_url_problem(getattr(args, "pacing_url", None))
    if problem is not None:  # a bad flag is a usage error (2), named, before any request
        return _fail(f"--pacing-url: {problem}", EXIT_USAGE)
    _setup_logging(args.verbose, getattr(args, "log_format", None))
    try:
        return asyncio.run(_main(args))
    except ConfigurationError as exc:
        # The SDK's wording names the Python argument; a shell user sets the variable.
        return _fail(str(exc).replace("pass api_token=..., or set ", "set "), EXIT_START)
    except StartError as exc:
        return _fail(str(exc), EXIT_START)
    except JournalUnavailableError as exc:  # Redis unreachable before any send
        return _fail(str(exc), EXIT_START)
    except JournalLostError as exc:  # mid-run: stopped sending, says how to resume
        return _fail(str(exc), EXIT_FAILED)
    except (InputError, JournalError, InvalidRequestError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except _Signalled:  # the start-up guard's: ``main`` names the signal (not Ctrl-C)
        raise
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except AuthenticationError:
        return _fail(_auth_failed(), EXIT_START)
    except APIConnectionError as exc:
        return _fail(str(exc), EXIT_START if exc.reached_server is False else EXIT_FAILED)
    except OpenTrainError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except BrokenPipeError:  # output piped into a reader that stopped (`| head`)
        return _output_closed()
    except OSError as exc:  # e.g. the journal's disk filled up: one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"I/O error{where}: {exc.strerror or exc}", EXIT_USAGE)
