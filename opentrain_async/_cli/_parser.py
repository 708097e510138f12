"""The command line's argument parser: every command and option, and the checks of
option values (``--concurrency``, ``--rate`` and every other number's range, ``--grace``,
``--pacing-url``, ``-`` where a file is written) that make a bad value a usage error
(exit 2, one line) rather than a failed run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NoReturn

from opentrain_async._errors import ConfigurationError
from opentrain_async._logs import LOG_FORMATS
from opentrain_async._redis import (
    SECRET_NAME,
    has_userinfo,
    parse_redis_url,
    redact_url,
    split_userinfo,
)
from opentrain_async._version import __version__

from ._options import EXIT_USAGE

__all__ = ["PROG", "build_parser"]

PROG = "opentrain-async"
_MAX_PAGE_SIZE = 100
_MAX_CONCURRENCY = 1000
_MAX_DEMO_MESSAGES = 1_000_000


_ARGV: ContextVar[tuple[str, ...]] = ContextVar("opentrain_async_argv", default=())
"""The arguments being parsed, for ``_Parser.error`` to keep their secrets out."""
_SECRET_VALUE = re.compile(r"\bot_pat_\S+|(?<=bearer )\S+", re.IGNORECASE)
"""A secret by its look, wherever it is in the arguments: an OpenTrain token (another
than the environment's: a second account's) or what follows ``Bearer``."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line (plus the usage line), never
    quoting a secret the arguments hold (``_without_secrets``)."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        argv = tuple(sys.argv[1:] if args is None else args)
        reset = _ARGV.set(tuple(a for a in argv if isinstance(a, str)))
        try:
            return super().parse_args(args, namespace)
        finally:
            _ARGV.reset(reset)

    def error(self, message: str) -> NoReturn:
        argv = _ARGV.get()
        flags = [a.partition("=")[0].lstrip("-").lower() for a in argv if a.startswith("--")]
        if "--token" in message or any("token" in flag for flag in flags):
            # Not echoed: what follows the flag is probably the token itself.
            message = (
                "there is no --token option: the token is never a flag (it would show in ps "
                "and shell history); set OT_API_TOKEN=... in the environment"
            )
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {_without_secrets(message, argv)}\n")


def _without_secrets(message: str, argv: tuple[str, ...]) -> str:
    """``message`` with every secret ``argv`` may hold as ``***``: URLs with a userinfo
    (redacted as everywhere), the value of a flag named like a secret (``--password
    X``, ``--auth=X``), what looks like one (``_SECRET_VALUE``), and the API token of
    the environment (pasted as an argument)."""
    secrets = [os.environ.get(name, "") for name in ("OT_API_TOKEN", "OPENTRAIN_API_TOKEN")]
    for index, arg in enumerate(argv):
        if has_userinfo(arg) and "://" in arg:
            message = message.replace(arg, redact_url(arg))
            secrets.append(split_userinfo(arg)[1] or "")
        secrets.extend(_SECRET_VALUE.findall(arg))
        name, eq, value = arg.partition("=")
        if name.startswith("-") and SECRET_NAME.search(name):
            secrets.append(value if eq else (argv[index + 1] if index + 1 < len(argv) else ""))
    # Under 4 characters nothing is a real secret, and replacing it would garble the text.
    for secret in sorted((s for s in secrets if len(s.strip()) >= 4), key=len, reverse=True):
        for form in (secret, repr(secret)[1:-1]):
            message = message.replace(form, "***")
    return message


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


def _demo_messages(text: str) -> int:
    """The demo's ``--messages``: 1-1,000,000 (the job is built in memory first)."""
    value = _positive_int(text)
    if value > _MAX_DEMO_MESSAGES:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_DEMO_MESSAGES:,}, got {value:,}")
    return value


def _concurrency(text: str) -> int:
    """``--concurrency``: 1-1,000 (each is a task and a socket; a typo of 3,000,000 would
    exhaust memory and file descriptors before the first send)."""
    value = _positive_int(text)
    if value > _MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be at most {_MAX_CONCURRENCY:,}, got {value:,}")
    return value


def _between(low: float, high: float, unit: str) -> Callable[[str], float]:
    """A type for a numeric option accepted from ``low`` to ``high`` (``unit`` names
    what they count).  Positive was not enough: ``--rate 1e-300`` was taken and the
    second line then waited for ever; ``inf`` and huge values never wait or never print.
    argparse names the option ("argument --rate: ...")."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:  # NaN too
            shown = text if text.isprintable() else repr(text)
            raise argparse.ArgumentTypeError(
                f"must be between {low:,g} and {high:,g} {unit}, got {shown}"
            )
        return value

    return number


_RATE = _between(0.001, 100_000, "messages/second")
"""``--rate``: from one message every 1,000 s to far beyond any API's limit."""
_PROGRESS_INTERVAL = _between(0.1, 3600, "seconds")
_POLL_INTERVAL = _between(0.01, 3600, "seconds")
_SERVER_RATE = _between(1, 100_000, "messages/second")


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


def _failures_file(text: str) -> Path:
    """``--failures``: a file.  ``-`` is not stdout (the summary is written there; the
    rows would be mixed into it) and is not taken as a file named ``-`` either."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            "'-' is not stdout here (the summary goes there): name a file, e.g. "
            "failures.jsonl (./- for a file named -)"
        )
    return Path(text)


def _journal_location(text: str) -> str:
    """``--journal``: a file or a ``redis://`` URL, never ``-`` (no stream can be one:
    a journal is read back and appended to on the next run)."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            "'-' cannot be a journal (it is read back and resumed on the next run): name a "
            "file or a redis:// URL (./- for a file named -), or pass --no-journal"
        )
    return text


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
    from opentrain_async._pacing.redis_backend import parse_pacing_url

    try:
        parse_pacing_url(url)
    except ConfigurationError as exc:
        text = str(exc).removeprefix("pacing_url: ").removeprefix("pacing_url is ")
        return text if "expected" in text else f"{text} ({_PACING_URL_SHAPE})"
    # The SDK's split (userinfo up to the last "@"): urlsplit would cut a password at a
    # "/" and show the rest of it as the database.  The host was checked above.
    parts = parse_redis_url(url.strip(), schemes=("redis", "rediss", "unix"))
    if parts.scheme == "unix":
        return None
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

    _add_send(commands, common)
    _add_bulk(commands, common)
    _add_reads(commands, common)
    from ._journal_cmd import add_journal_parser

    add_journal_parser(commands, common)

    _add_demo(commands)
    return parser


def _add_send(commands: Any, common: _Parser) -> None:
    """``send CONVERSATION_ID [TEXT]``."""
    send = commands.add_parser(
        "send", parents=[common], help="send one message", description="Send one message."
    )
    send.add_argument("conversation_id", metavar="CONVERSATION_ID")
    send.add_argument(
        "text", metavar="TEXT", nargs="?", default="-", help="the message; - or omitted: stdin"
    )
    send.add_argument("--json", action="store_true", help="print the API's message object")
    _pacing_url_option(send)


def _add_bulk(commands: Any, common: _Parser) -> None:
    """``bulk FILE``: a job, its journal, its pace and what happens on failure."""
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
        type=_RATE,
        metavar="R",
        help="the server's known limit in messages/second, 0.001-100000, for this process "
        "only (with --pacing-url give each process its share; default: learned from 429s)",
    )
    _add_bulk_journal(bulk)
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
        type=_PROGRESS_INTERVAL,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal, 0.1-3600 (2)",
    )
    bulk.add_argument(
        "--metrics-port",
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics on this port while the job runs (needs the "
        "prometheus extra; docs/telemetry.md)",
    )
    _pacing_url_option(bulk)


def _add_bulk_journal(bulk: argparse.ArgumentParser) -> None:
    """``bulk``'s options about its journal, what earlier runs did and stopping."""
    # Together they ran with no journal, so a rerun of a job named --journal resent it all.
    where = bulk.add_mutually_exclusive_group()
    where.add_argument(
        "--journal",
        type=_journal_location,
        metavar="PATH|URL",
        help="crash-safe progress file (default: one per input file under "
        "$XDG_STATE_HOME/opentrain_async/jobs; stdin: none unless given), or "
        "redis://host:6379/0?job=NAME (rediss:// for TLS) to resume on any machine",
    )
    where.add_argument(
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
        type=_failures_file,
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


def _add_reads(commands: Any, common: _Parser) -> None:
    """``conversations`` and ``messages``."""
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
        "--interval",
        type=_POLL_INTERVAL,
        default=2.0,
        metavar="SECONDS",
        help="--follow poll interval, 0.01-3600 s (2)",
    )
    messages.add_argument("--json", action="store_true", help="JSON Lines (API objects)")


def _add_demo(commands: Any) -> None:
    """``demo``: a job against the embedded fake server."""
    demo = commands.add_parser(
        "demo",
        parents=[_common(top=False, base_url=False)],
        help="a 2,000-message job against the embedded fake server",
        description="Start the fake OpenTrain server on loopback (rate limited, with a few "
        "conversations that refuse messages) and run a bulk job against it.",
    )
    demo.add_argument("--messages", type=_demo_messages, default=2000, help=argparse.SUPPRESS)
    demo.add_argument("--server-rate", type=_SERVER_RATE, default=400.0, help=argparse.SUPPRESS)
    demo.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
