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
import io
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO
from urllib.parse import urlsplit

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
from opentrain_async._logs import LOG_FORMATS, TEXT_FORMAT, formatter, log_format_from_env
from opentrain_async._models import Message
from opentrain_async._validation import validate_content, validate_conversation_id
from opentrain_async._version import __version__

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
from ._progress import describe_retry
from ._read import print_json, terminal_safe

__all__ = ["main"]

PROG = "opentrain-async"
_MAX_PAGE_SIZE = 100
_MAX_CONCURRENCY = 1000


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line (plus the usage line)."""

    def error(self, message: str) -> NoReturn:
        if "--token" in message or "--api-token" in message:
            # Not echoed: what follows the flag is probably the token itself.
            message = (
                "there is no --token option: the token is never a flag (it would show in ps "
                "and shell history); set OT_API_TOKEN=... in the environment"
            )
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _page_size(text: str) -> int:
    """``--limit``: the API's page size, 1-100 (a usage error beyond, not a failed run)."""
    value = _positive_int(text)
    if value > _MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_PAGE_SIZE}, got {value}")
    return value


def _concurrency(text: str) -> int:
    """``--concurrency``: 1-1,000 (each is a task and a socket; a typo of 3,000,000 would
    exhaust memory and file descriptors before the first send)."""
    value = _positive_int(text)
    if value > _MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_CONCURRENCY:,}, got {value:,}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _seconds(text: str) -> float:
    """``--grace``: seconds >= 0 (``inf``: wait until the sends end).  NaN and negative
    values were taken and printed as "waiting up to nan s"."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _common(*, top: bool, base_url: bool = True) -> _Parser:
    """Options accepted before and after the command (after it, they must not reset)."""
    common = _Parser(add_help=False)
    if not base_url:  # demo serves itself: no --base-url to offer
        common.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="log to stderr"
        )
        return common
    common.add_argument(
        "--base-url",
        default=None if top else argparse.SUPPRESS,
        help="API origin (default: $OT_API_BASE_URL, $OPENTRAIN_API_BASE_URL, the CLI "
        "config file, then https://app.opentrain.ai)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="log to stderr (-v: info, -vv: debug)",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None if top else argparse.SUPPRESS,
        help="log lines as text or one JSON object each, with every field as a key "
        "(default: $OPENTRAIN_LOG_FORMAT, else text)",
    )
    return common


def _pacing_url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pacing-url",
        metavar="URL",
        help="share one rate limit with every process sending with this token, in Redis "
        "(redis://[:password@]host:6379/0; default: $OT_PACING_URL; '' for none)",
    )


_PACING_URL_SHAPE = "expected redis://[:password@]host:6379/0, rediss:// for TLS, or unix://"


def _pacing_url_problem(url: str | None) -> str | None:
    """What is wrong with ``--pacing-url`` (never its password), or None: the SDK's own
    check, worded for the flag, plus a host and a numeric database."""
    if not url:
        return None
    from opentrain_async._pacing.redis_backend import parse_pacing_url, redact_url

    try:
        parse_pacing_url(url)
    except ConfigurationError as exc:
        text = str(exc).removeprefix("pacing_url: ").removeprefix("pacing_url is ")
        return text if "expected" in text else f"{text} ({_PACING_URL_SHAPE})"
    parts = urlsplit(url.strip())
    if parts.scheme == "unix":
        return None
    if not parts.hostname:
        return f"no host in {redact_url(url)!r} ({_PACING_URL_SHAPE})"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return f"the database must be a number, got {database!r} ({_PACING_URL_SHAPE})"
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    common = _common(top=False)
    parser = _Parser(
        prog=PROG,
        description="Send OpenTrain messages from the shell: one, or a whole crash-safe job. "
        "The token comes from $OT_API_TOKEN, $OPENTRAIN_API_TOKEN or the OpenTrain CLI's "
        "config file; it is never a flag.",
        parents=[_common(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    send = commands.add_parser(
        "send", parents=[common], help="send one message", description="Send one message."
    )
    send.add_argument("conversation_id", metavar="CONVERSATION_ID")
    send.add_argument(
        "text", metavar="TEXT", nargs="?", default="-", help="the message; - or omitted: stdin"
    )
    send.add_argument("--json", action="store_true", help="print the API's message object")
    _pacing_url_option(send)

    bulk = commands.add_parser(
        "bulk",
        parents=[common],
        help="send a JSONL or CSV file of messages",
        description="Send every message of FILE (JSON Lines with conversationId, content and "
        "optional key; or CSV with those headers; - for stdin) at the server's pace.",
    )
    bulk.add_argument("file", metavar="FILE")
    bulk.add_argument("--format", choices=["jsonl", "csv"], help="default: by extension/content")
    bulk.add_argument(
        "--concurrency",
        type=_concurrency,
        default=16,
        help="requests on the wire, 1-1000 (16: lower than the SDK's 64, so a job run beside "
        "a service on the same token leaves it room; the pacer, not this, follows the limit)",
    )
    bulk.add_argument(
        "--rate",
        type=_positive_float,
        help="the server's known limit in messages/second, for this process only (with "
        "--pacing-url give each process its share; default: learned from 429s)",
    )
    bulk.add_argument(
        "--journal",
        metavar="PATH|URL",
        help="crash-safe progress file (default: one per input file under "
        "$XDG_STATE_HOME/opentrain_async/jobs; stdin: none unless given), or "
        "redis://host:6379/0?job=NAME (rediss:// for TLS) to resume on any machine",
    )
    bulk.add_argument(
        "--no-journal", action="store_true", help="no journal: a rerun sends everything again"
    )
    bulk.add_argument(
        "--allow-changed",
        action="store_true",
        help="send inputs whose key was sent before with other content (default: refuse)",
    )
    bulk.add_argument(
        "--reuse-journal",
        action="store_true",
        help="use a journal written for another input path or API (a moved job file)",
    )
    bulk.add_argument(
        "--failures",
        type=Path,
        metavar="FILE",
        help="write every input not delivered to FILE (input format, plus line and reason)",
    )
    bulk.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long sends on the wire get to finish and be journaled (10)",
    )
    bulk.add_argument(
        "--retry-failed",
        action="store_true",
        help="resend inputs the journal recorded as failed in an earlier run",
    )
    bulk.add_argument(
        "--unordered",
        action="store_true",
        help="send a conversation's lines concurrently (default: each after the one before)",
    )
    bulk.add_argument(
        "--on-failure",
        choices=("stop", "continue"),
        default="stop",
        help="when a line fails for good: stop its conversation's later lines (default) "
        "or send them anyway",
    )
    bulk.add_argument("--dry-run", action="store_true", help="validate everything, send nothing")
    bulk.add_argument("--strict", action="store_true", help="refuse to start if any line is bad")
    bulk.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    bulk.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (2)",
    )
    bulk.add_argument(
        "--metrics-port",
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics on this port while the job runs (needs the "
        "prometheus extra; docs/telemetry.md)",
    )
    _pacing_url_option(bulk)

    conversations = commands.add_parser(
        "conversations",
        parents=[common],
        help="list your conversations",
        description="List the conversations you take part in, most recently updated first.",
    )
    conversations.add_argument("--filter", choices=["all", "job", "proposal"], default="all")
    conversations.add_argument("--unread", action="store_true", help="only those with unread")
    conversations.add_argument("--limit", type=_page_size, default=50, help="page size, 1-100 (50)")
    conversations.add_argument("--max", type=_positive_int, help="stop after N conversations")
    conversations.add_argument("--json", action="store_true", help="JSON Lines (API objects)")

    messages = commands.add_parser(
        "messages",
        parents=[common],
        help="print a conversation's messages (--follow to tail it)",
        description="Print a conversation's latest messages, oldest first (--direction newer: "
        "from its first message); --follow prints new ones as they arrive until interrupted.",
    )
    messages.add_argument("conversation_id", metavar="CONVERSATION_ID")
    messages.add_argument("--direction", choices=["older", "newer"], default="older")
    messages.add_argument("--limit", type=_page_size, default=50, help="page size, 1-100 (50)")
    messages.add_argument("--max", type=_positive_int, help="stop after N messages")
    messages.add_argument("--follow", action="store_true", help="keep printing new messages")
    messages.add_argument(
        "--interval", type=_positive_float, default=2.0, help="--follow poll interval (2 s)"
    )
    messages.add_argument("--json", action="store_true", help="JSON Lines (API objects)")

    from ._journal_cmd import add_journal_parser

    add_journal_parser(commands, common)

    demo = commands.add_parser(
        "demo",
        parents=[_common(top=False, base_url=False)],
        help="a 2,000-message job against the embedded fake server",
        description="Start the fake OpenTrain server on loopback (rate limited, with a few "
        "conversations that refuse messages) and run a bulk job against it.",
    )
    demo.add_argument("--messages", type=_positive_int, default=2000, help=argparse.SUPPRESS)
    demo.add_argument("--server-rate", type=float, default=400.0, help=argparse.SUPPRESS)
    demo.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    return parser


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


def _setup_logging(verbose: int, log_format: str | None = None) -> None:
    sdk = logging.getLogger("opentrain_async")
    sdk.handlers.clear()  # OPENTRAIN_LOG's stderr handler: the CLI's own prints each line
    if not verbose:  # OPENTRAIN_LOG=info|debug (applied at import) counts as -v / -vv
        verbose = {logging.INFO: 1, logging.DEBUG: 2}.get(sdk.level, 0)
    if not verbose:
        logging.getLogger("opentrain_async").setLevel(logging.WARNING)
        level, fmt = logging.WARNING, f"{PROG}: %(message)s"
    else:
        level = logging.DEBUG if verbose > 1 else logging.INFO
        fmt = TEXT_FORMAT  # OPENTRAIN_LOG's format too
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format or log_format_from_env(), fmt))
    logging.basicConfig(level=level, handlers=[handler])


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        raise InputError("stdin is not UTF-8 text") from None


def _show_message(message: Message, out: TextIO) -> None:
    preview = message.content if len(message.content) <= 200 else message.content[:199] + "…"
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
            message = await client.send_message(args.conversation_id, text)
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
    if args.json:
        print_json(message, sys.stdout)
    else:
        _show_message(message, sys.stdout)
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


async def _main(args: argparse.Namespace) -> int:
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
        return _fail(f"interrupted by {signal.Signals(exc.signum).name}", 128 + exc.signum)
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
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except AuthenticationError:
        return _fail(_auth_failed(), EXIT_START)
    except APIConnectionError as exc:
        return _fail(str(exc), EXIT_START if exc.reached_server is False else EXIT_FAILED)
    except OpenTrainError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:  # e.g. the journal's disk filled up: one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"I/O error{where}: {exc.strerror or exc}", EXIT_USAGE)
