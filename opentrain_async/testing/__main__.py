"""Run a FakeOpenTrain in its own process (the benchmarks, or a bot tried by hand).

Prints exactly one line, ``READY http://127.0.0.1:PORT TOKEN``, once serving, then
serves until SIGTERM or SIGINT. Requests are not recorded (nobody could read them);
counters are available at ``GET /__fake__/stats`` and ``POST /__fake__/reset-stats``.
Conversations ``conv_0001`` .. ``conv_NNNN`` are created for the default token, with a
second person in each: their token (``--person-token``, ``PERSON_TOKEN`` by default)
sends as someone else, so a bot on the default token sees those messages as incoming.
``GET /__fake__/info`` lists both tokens and the conversations.

Conversations a bot must cope with come from flags (``--read-only ID``, ``--policy-blocked
TEXT``, ``--missing ID``, ``--rate-limited N``) or a JSON file (``--scenario FILE``, keys
``readOnly``, ``policyBlocked``, ``missing``, ``rateLimited``); see docs/testing.md.

``python -m opentrain_async.testing inject BASE_URL CONVERSATION_ID TEXT`` stores an
incoming message from that person in a running server (``POST /__fake__/inject``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
import urllib.error
import urllib.request
from typing import Any, Final

from ._limits import FixedWindow, LimitSchedule, RateLimit, TokenBucket
from ._models import Fault
from ._server import DEFAULT_TOKEN, OTHER_USER, FakeOpenTrain

PERSON_TOKEN: Final = "ot_pat_fake_person_9876543210"  # noqa: S105 - a fake, public test token


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _seconds(text: str) -> float:
    """A duration flag: finite seconds >= 0 (a negative or NaN latency was taken and
    served as none)."""
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be seconds >= 0, got {text}")
    return value


def _port(text: str) -> int:
    """``--port``: 0 (a free one) to 65535 (anything else ended in a bind traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0-65535, got {text}")
    return value


def _count(text: str) -> int:
    """A count flag: a whole number >= 0 (a negative one was served as none)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _share(text: str) -> float:
    """A share or probability flag: 0 to 1."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="python -m opentrain_async.testing",
        description="Serve a fake OpenTrain public API on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot's (default) token")
    parser.add_argument(
        "--person-token",
        default=PERSON_TOKEN,
        help="the other person in every conversation (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--latency", type=_seconds, default=0.0, help="seconds of simulated work per request"
    )
    parser.add_argument(
        "--latency-jitter",
        type=_share,
        default=0.0,
        metavar="SHARE",
        help="each request's latency varies uniformly by +-SHARE of --latency",
    )
    parser.add_argument("--conversations", type=_count, default=1, metavar="N")
    _add_limit_options(parser)
    _add_scenario_options(parser)
    return parser


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    """The rate limit the server enforces, and the faults it injects."""
    limits = parser.add_mutually_exclusive_group()
    limits.add_argument("--rate", type=float, help="token bucket: sends per second")
    limits.add_argument("--window-limit", type=int, help="fixed window: sends per window")
    limits.add_argument(
        "--limit-json",
        help="a LimitSchedule as JSON (LimitSchedule.to_dict): drawn limits, any hint style",
    )
    parser.add_argument("--burst", type=int, default=1, help="token bucket capacity")
    parser.add_argument(
        "--rate-change",
        metavar="SECONDS:RATE",
        help="token bucket: switch to RATE sends per second SECONDS after READY",
    )
    parser.add_argument("--window", type=float, default=1.0, help="fixed window seconds")
    parser.add_argument("--integer-hints", action="store_true", help="whole-second hints")
    parser.add_argument(
        "--retry-after-header", action="store_true", help="also send a Retry-After header"
    )
    parser.add_argument("--fault", choices=[f.value for f in Fault], help="fault to inject")
    parser.add_argument(
        "--fault-rate", type=_share, default=None, help="probability per send (default: always)"
    )
    parser.add_argument("--fault-delay", type=_seconds, default=60.0, help="stall seconds")


def _add_scenario_options(parser: argparse.ArgumentParser) -> None:
    """Conversations a bot must cope with."""
    scenario = parser.add_argument_group(
        "scenario", "conversations a bot must cope with (flags add to --scenario FILE)"
    )
    scenario.add_argument(
        "--scenario",
        metavar="FILE",
        help='JSON: {"readOnly": [ID], "policyBlocked": [TEXT], "missing": [ID], '
        '"rateLimited": {"next": N, "retryAfter": S}}',
    )
    scenario.add_argument(
        "--read-only",
        action="append",
        default=[],
        metavar="ID",
        help="a conversation whose sends answer 409 read_only_conversation",
    )
    scenario.add_argument(
        "--policy-blocked",
        action="append",
        default=[],
        metavar="TEXT",
        help="content containing TEXT answers 403 message_policy_blocked",
    )
    scenario.add_argument(
        "--missing",
        action="append",
        default=[],
        metavar="ID",
        help="a conversation id that answers 404 (never created, even within --conversations)",
    )
    scenario.add_argument(
        "--rate-limited",
        type=int,
        metavar="N",
        help="the next N sends answer 429 (hint: --rate-limited-retry-after, 1 s)",
    )
    scenario.add_argument(
        "--rate-limited-retry-after", type=_seconds, default=1.0, metavar="S"
    )  # a NaN hint was served as NaN (not JSON), a negative one as such


SCENARIO_KEYS: Final = ("readOnly", "policyBlocked", "missing", "rateLimited")


def load_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario of ``--scenario FILE`` plus the flags, checked; ValueError names what
    is wrong (an unknown key, a value of the wrong type)."""
    scenario: dict[str, Any] = {"readOnly": [], "policyBlocked": [], "missing": []}
    if args.scenario:
        try:
            with open(args.scenario, encoding="utf-8") as file:
                loaded = json.load(file)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--scenario {args.scenario}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--scenario {args.scenario}: must be a JSON object")
        unknown = sorted(set(loaded) - set(SCENARIO_KEYS))
        if unknown:
            raise ValueError(
                f"--scenario {args.scenario}: unknown key {unknown[0]!r} "
                f"(known: {', '.join(SCENARIO_KEYS)})"
            )
        for key in ("readOnly", "policyBlocked", "missing"):
            value = loaded.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"--scenario {args.scenario}: {key} must be a list of strings")
            scenario[key] = list(value)
        if "rateLimited" in loaded:
            limited = loaded["rateLimited"]
            if (
                not isinstance(limited, dict)
                or set(limited) - {"next", "retryAfter"}
                or not isinstance(limited.get("next"), int)
                or limited["next"] < 0
                or not isinstance(limited.get("retryAfter", 1.0), int | float)
                or not 0 <= limited.get("retryAfter", 1.0) < math.inf  # json reads NaN
            ):
                raise ValueError(
                    f"--scenario {args.scenario}: rateLimited must be "
                    '{"next": N, "retryAfter": SECONDS}'
                )
            scenario["rateLimited"] = {
                "next": limited["next"],
                "retryAfter": float(limited.get("retryAfter", 1.0)),
            }
    scenario["readOnly"] += args.read_only
    scenario["policyBlocked"] += args.policy_blocked
    scenario["missing"] += args.missing
    if args.rate_limited is not None:
        if args.rate_limited < 0:
            raise ValueError("--rate-limited must be 0 or more")
        scenario["rateLimited"] = {
            "next": args.rate_limited,
            "retryAfter": args.rate_limited_retry_after,
        }
    return scenario


def apply_scenario(server: FakeOpenTrain, scenario: dict[str, Any], count: int) -> list[str]:
    """Create ``conv_0001`` .. ``conv_<count>`` (less the missing ones) and the scenario's
    conversations on `server`; returns the ids created."""
    missing = set(scenario["missing"])
    created = []
    for i in range(1, count + 1):
        cid = f"conv_{i:04d}"
        if cid not in missing:
            created.append(server.add_conversation(cid))
    for cid in scenario["readOnly"]:
        if cid in missing:
            raise ValueError(f"conversation {cid!r} cannot be both read-only and missing")
        if server.world.has_conversation(cid):
            server.conversation(cid).send_block = "read_only_conversation"
        else:
            created.append(server.add_conversation(cid, send_block="read_only_conversation"))
    for text in scenario["policyBlocked"]:
        server.block_content(text, policy="blocked_by_scenario")
    limited = scenario.get("rateLimited")
    if limited and limited["next"]:
        server.throttle_next(limited["next"], retry_after=limited["retryAfter"])
    return created


def _bucket(args: argparse.Namespace, rate: float) -> TokenBucket:
    """A token bucket of ``rate`` sends per second, with the flags' burst and hints."""
    return TokenBucket(
        rate=rate,
        burst=args.burst,
        integer_hints=args.integer_hints,
        retry_after_header=args.retry_after_header,
    )


def _limit_of(args: argparse.Namespace) -> RateLimit | None:
    """The rate limit the flags ask for (None: unlimited)."""
    if args.rate is not None:
        return _bucket(args, args.rate)
    if args.limit_json is not None:
        return LimitSchedule.from_dict(json.loads(args.limit_json))
    if args.window_limit is not None:
        return FixedWindow(
            limit=args.window_limit,
            window=args.window,
            integer_hints=args.integer_hints,
            retry_after_header=args.retry_after_header,
        )
    return None


def _rate_change(flag: str) -> tuple[float, float]:
    """``--rate-change SECONDS:RATE`` read; ValueError names the flag."""
    try:
        at, rate = (float(part) for part in flag.split(":", 1))
    except ValueError:
        raise ValueError(f"--rate-change {flag}: expected SECONDS:RATE") from None
    # Finite too: an infinite RATE was taken, then its switch failed in a background
    # task and the old limit stayed; an infinite SECONDS never switches.
    if not (0 <= at < math.inf and 0 < rate < math.inf):
        raise ValueError(f"--rate-change {flag}: SECONDS must be >= 0 and RATE > 0, both finite")
    return at, rate


def _checked_limit(args: argparse.Namespace) -> RateLimit | None:
    """``_limit_of`` before serving: a limit it cannot build is a ValueError naming its
    flag (not a traceback out of the start-up)."""
    if args.rate is not None and args.rate_change:
        _rate_change(args.rate_change)
    flag = "--rate" if args.rate is not None else "--limit-json"
    if args.rate is None and args.limit_json is None:
        flag = "--window-limit"
    try:
        return _limit_of(args)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{flag}: not a usable limit ({type(exc).__name__}: {exc})") from None


async def _serve(args: argparse.Namespace) -> None:
    """Start the server, announce it, and wait for a termination signal."""
    server = FakeOpenTrain(
        token=args.token,
        host=args.host,
        port=args.port,
        seed=args.seed,
        latency=args.latency,
        record_requests=False,
    )
    server.latency_jitter = args.latency_jitter
    person = server.add_token(args.person_token, user_id=OTHER_USER)
    scenario = getattr(args, "scenario_loaded", None) or load_scenario(args)  # main checked it
    conversations = apply_scenario(server, scenario, args.conversations)
    server.info = {
        "baseUrl": None,
        "token": args.token,
        "personToken": person.token,
        "personUserId": person.user_id,
        "conversations": conversations,
        "scenario": scenario,
    }
    limit = args.limit_loaded if hasattr(args, "limit_loaded") else _limit_of(args)
    if limit is not None:
        server.set_rate_limit(limit)
    if args.fault is not None:
        server.inject_fault(Fault(args.fault), probability=args.fault_rate, delay=args.fault_delay)

    async def change_rate(at: float, rate: float) -> None:
        """The limit moves mid-run (benchmarks: a drop or a rise)."""
        await asyncio.sleep(at)
        server.set_rate_limit(_bucket(args, rate))

    changes: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt instead
            loop.add_signal_handler(sig, stop.set)
    try:
        async with server:
            server.info["baseUrl"] = server.base_url
            sys.stdout.write(f"READY {server.base_url} {server.token}\n")
            sys.stdout.flush()
            if args.rate is not None and args.rate_change:
                at, rate = _rate_change(args.rate_change)
                changes.add(asyncio.ensure_future(change_rate(at, rate)))
            await stop.wait()
    finally:
        for task in changes:
            task.cancel()
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)


def _inject_parser() -> argparse.ArgumentParser:
    """The ``inject`` command's interface."""
    parser = argparse.ArgumentParser(
        prog="python -m opentrain_async.testing inject",
        description="Store an incoming message in a running fake server.",
    )
    parser.add_argument("base_url", help="the server's origin, as printed on its READY line")
    parser.add_argument("conversation_id")
    parser.add_argument("content")
    parser.add_argument(
        "--sender", default=OTHER_USER, help="sender user id (default: the other person)"
    )
    return parser


def inject(argv: list[str]) -> int:
    """POST the message to the server's admin endpoint; print its id; 0 on success."""
    args = _inject_parser().parse_args(argv)
    payload = json.dumps(
        {
            "conversationId": args.conversation_id,
            "content": args.content,
            "senderUserId": args.sender,
        }
    ).encode()
    url = args.base_url.rstrip("/") + "/__fake__/inject"
    if not url.startswith(("http://", "https://")):
        sys.stderr.write(f"inject: error: base URL must start with http://, got {args.base_url}\n")
        return 2
    request = urllib.request.Request(  # noqa: S310 - http(s) checked above
        url, data=payload, headers={"Content-Type": "application/json"}, method="POST"
    )
    answer: Any
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        sys.stderr.write(f"inject: error: {exc.code}: {detail}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"inject: error: cannot reach {args.base_url}: {exc}\n")
        return 3
    print(answer["message"]["id"])
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated, or run the ``inject`` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["inject"]:
        return inject(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        args.scenario_loaded = load_scenario(args)
        if set(args.scenario_loaded["readOnly"]) & set(args.scenario_loaded["missing"]):
            raise ValueError("a conversation cannot be both read-only and missing")
        args.limit_loaded = _checked_limit(args)
    except ValueError as exc:
        parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
